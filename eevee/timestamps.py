"""Kubernetes timestamps: RFC 3339 in UTC, to the second (as metav1.Time serialises)."""

from datetime import UTC, datetime


def rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(earlier: str | None, later: str) -> float:
    """Seconds from one RFC 3339 timestamp to another; infinite when the first is missing or unreadable."""
    try:
        start = datetime.fromisoformat(str(earlier).replace("Z", "+00:00"))
        return (datetime.fromisoformat(later.replace("Z", "+00:00")) - start).total_seconds()
    except ValueError:
        return float("inf")
