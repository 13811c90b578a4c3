"""Where the files that ship beside the package live: rules/, crds/, examples/.

In a source checkout (and an editable install) they sit next to the ``eevee``
package; a wheel installs them under ``<prefix>/share/eevee-operator/``; the
container image points ``RULES_DIR`` at the chart's ConfigMap.
"""

from __future__ import annotations

import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def bundled(name: str) -> Path:
    """The directory ``name`` (``rules``, ``crds`` or ``examples``) that ships with eevee."""
    for base in (_CHECKOUT, Path(sys.prefix) / "share" / "eevee-operator"):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    return _CHECKOUT / name
