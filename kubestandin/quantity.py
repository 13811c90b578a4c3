"""Resource quantities as the API server parses, compares and stores them.

The stand-in keeps its own implementation, written apart from the operator's
``quantity`` transform on purpose: were they one piece of code, a bug in it would
be mirrored by the server and no test would ever see it. This one follows
apimachinery's ``resource.Quantity`` with ``decimal.Decimal`` arithmetic:
``ParseQuantity`` for the grammar, ``CanonicalizeBytes`` for the stored text.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import NamedTuple

_GRAMMAR = re.compile(
    r"^(?P<sign>[+-]?)(?P<digits>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY_POWERS = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_SI_POWERS = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SI_BY_POWER = {power: suffix for suffix, power in _SI_POWERS.items()} | {0: ""}
_BINARY_BY_POWER = {power: suffix for suffix, power in _BINARY_POWERS.items()} | {0: ""}
_NANO = Decimal("1e-9")
QUANTITY_PATTERN = (
    "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"  # the pattern the real server quotes in its message
)


class Quantity(NamedTuple):
    value: Decimal
    text: str  # canonical


def parse(raw: object) -> Quantity:
    """A quantity from JSON (a string or a number); ValueError when it is none."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError("not a quantity")
    match = _GRAMMAR.match(str(raw))
    if match is None:
        raise ValueError("not a quantity")
    suffix = match["suffix"] or ""
    with localcontext() as context:
        context.prec = 60
        number = Decimal(match["sign"] + match["digits"])
        if suffix in _BINARY_POWERS:
            value, style = number * (Decimal(1024) ** _BINARY_POWERS[suffix]), "binary"
        elif suffix[:1] in ("e", "E"):
            value, style = number.scaleb(int(suffix[1:])), "exponent"
        else:
            value, style = number.scaleb(_SI_POWERS.get(suffix, 0)), "si"
        # Nothing finer than a nano-unit is kept: the server rounds up.
        value = (value / _NANO).to_integral_value(ROUND_CEILING) * _NANO
        return Quantity(value.normalize() if value else Decimal(0), _canonical(value, style))


def _canonical(value: Decimal, style: str) -> str:
    if value == 0:
        return "0"
    if style == "binary" and (abs(value) < 1024 or value != value.to_integral_value()):
        style = "si"  # small or fractional binary amounts are shown in decimal
    if style == "binary":
        mantissa, power = int(value), 0
        while mantissa % 1024 == 0 and power < 6:
            mantissa //= 1024
            power += 1
        return f"{mantissa}{_BINARY_BY_POWER[power]}"
    sign, digits, exponent = value.normalize().as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exponent, int)
    while exponent % 3:  # decimal suffixes come in powers of a thousand
        mantissa *= 10
        exponent -= 1
    text = "-" if sign else ""
    if style == "exponent" or exponent not in _SI_BY_POWER:
        return f"{text}{mantissa}e{exponent}" if exponent else f"{text}{mantissa}"
    return f"{text}{mantissa}{_SI_BY_POWER[exponent]}"
