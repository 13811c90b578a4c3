"""Kubernetes timestamps: RFC 3339 in UTC, to the second (as metav1.Time serialises)."""

from datetime import UTC, datetime


def rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
