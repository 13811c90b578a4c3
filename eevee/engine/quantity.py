"""Kubernetes resource quantities in their canonical form.

The API server stores every quantity canonicalised (``0.5`` becomes ``500m``,
``1024Mi`` becomes ``1Gi``, ``1.5Gi`` becomes ``1536Mi``). A rule table that
copied ``cpu: 0.5`` verbatim would differ from the live object forever and the
operator would write on every pass; the ``quantity`` transform renders the form
the server will store, following apimachinery's ``Quantity.CanonicalizeBytes``.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))([a-zA-Z]*|[eE][+-]?\d+)$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()}
_BINARY_SUFFIX = {exponent: suffix for suffix, exponent in _BINARY.items()} | {0: ""}


class QuantityError(ValueError):
    """Not a quantity; ``where`` is the path below the value handed in (``.limits.cpu``)."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


def _parse(value: Any) -> tuple[Fraction, str]:
    text = str(value).strip() if not isinstance(value, bool) else ""
    match = _QUANTITY.match(text) if isinstance(value, (str, int, float)) else None
    if match is None:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1.5, 256Mi, 1e3)")
    number, suffix = match.groups()
    amount = Fraction(number)
    if suffix in _BINARY:
        return amount * (1 << _BINARY[suffix]), "binary"
    if suffix in _DECIMAL:
        return amount * Fraction(10) ** _DECIMAL[suffix], "decimal"
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return amount * Fraction(10) ** int(suffix[1:]), "exponent"
    raise QuantityError(f"{value!r} has an unknown quantity suffix {suffix!r}")


def quantity_value(value: Any) -> Fraction:
    """The exact amount of a quantity (``1Gi`` → 1073741824); QuantityError when it is none."""
    return _parse(value)[0]


def canonical_quantity(value: str | int | float) -> str:
    """The canonical text of one quantity; QuantityError (a ValueError) when it is not a quantity."""
    amount, fmt = _parse(value)
    if fmt == "binary" and (abs(amount) < 1024 or amount.denominator != 1):
        fmt = "decimal"
    if fmt == "binary":
        mantissa, exponent = int(amount), 0
        while mantissa and mantissa % 1024 == 0:
            mantissa //= 1024
            exponent += 10
        return f"{mantissa}{_BINARY_SUFFIX[exponent]}"

    mantissa, exponent = _decimal_parts(amount)
    if mantissa == 0:
        return "0"
    if fmt == "exponent" or exponent not in _DECIMAL_SUFFIX:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def _decimal_parts(amount: Fraction) -> tuple[int, int]:
    """``amount`` as ``mantissa * 10**exponent`` with the exponent a multiple of three."""
    exponent = 0
    while amount.denominator != 1 and exponent > -9:
        amount *= 10
        exponent -= 1
    if amount.denominator != 1:  # finer than nano: the server rounds up to 1n
        amount = Fraction(-(-amount.numerator // amount.denominator))
    mantissa = int(amount)
    if mantissa == 0:
        return 0, 0
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    return mantissa * 10**shift, exponent - shift


def canonical_quantities(value: Any, where: str = "") -> Any:
    """Canonicalise every scalar leaf of a mapping or list (e.g. a ResourceRequirements);
    a QuantityError says where below ``value`` the bad leaf is."""
    if isinstance(value, dict):
        return {key: canonical_quantities(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [canonical_quantities(item, f"{where}[{n}]") for n, item in enumerate(value)]
    try:
        return canonical_quantity(value)
    except QuantityError as error:
        raise QuantityError(str(error), where) from None
