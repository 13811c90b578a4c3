"""Reloading rule tables when their files change (the chart mounts them from a ConfigMap).

Change is detected by content, not timestamps: kubelet updates a mounted
ConfigMap by swapping a symlink, which modification times do not show reliably.
A refused edit is logged with every problem, counted, and the last good tables
stay in force.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from eevee.engine.kubeschema import release_builtin_schemas
from eevee.engine.tables import RuleSet, TableError, load_rules, table_files
from eevee.manifests import kind_schemas
from eevee.metrics import Metrics

log = logging.getLogger("eevee.rules")


def fingerprint(directory: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        for file in table_files(directory):
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    except (TableError, OSError) as error:
        digest.update(str(error).encode())
    return digest.hexdigest()


class RulesSource:
    """The rule tables in force, and their reloading."""

    def __init__(self, directory: str | Path, metrics: Metrics) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self._fingerprint = fingerprint(self.directory)
        # Checked against the Kubernetes schemas of the kinds they make, at start and on reload.
        self.schemas = kind_schemas()
        try:
            self.rules: RuleSet = load_rules(self.directory, schemas=self.schemas)  # refused: no start
        finally:
            release_builtin_schemas()
        self.metrics.rule_reloads.labels("success").inc()
        self.metrics.rules_valid.set(1)
        self.valid = True

    def check(self) -> RuleSet | None:
        """New tables when the files changed and load; None otherwise (bad edits are logged)."""
        current = fingerprint(self.directory)
        if current == self._fingerprint:
            return None
        self._fingerprint = current
        try:
            rules = load_rules(self.directory, schemas=self.schemas)
        except TableError as error:
            release_builtin_schemas()
            self.metrics.rule_reloads.labels("failure").inc()
            self.metrics.rules_valid.set(0)
            self.valid = False
            log.error(
                "rule tables refused; the last good tables stay in force",
                extra={"problems": [f"{f}: {r}: {why}" for f, r, why in error.problems]},
            )
            return None
        release_builtin_schemas()
        self.metrics.rule_reloads.labels("success").inc()
        self.metrics.rules_valid.set(1)
        self.valid = True
        self.rules = rules
        log.info("rule tables reloaded", extra={"kinds": sorted(rules.tables)})
        return rules
