"""Human quantities: '360M', '0.4G', '2.5K' and ranges such as '360M:400M' or ':2M'."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from regspace.errors import UsageProblem

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
# A trailing F ("400MF", "1.6GF") is the papers' spelling of flops; accepted and ignored.
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)F?\s*$", re.IGNORECASE)


def parse_quantity(text: str, *, what: str = "value") -> int:
    """Parse '360M', '0.36G', '2500', '400MF' into an integer (rounded to the nearest unit)."""
    m = _QUANTITY.match(text)
    if not m:
        raise UsageProblem(
            f"cannot read {what} {text!r}: expected a number with an optional K/M/G suffix, e.g. 360M or 0.4G"
        )
    try:
        value = Decimal(m.group(1)) * _SUFFIX[m.group(2).upper()]
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        raise UsageProblem(f"cannot read {what} {text!r}") from None
    return int(value.to_integral_value())


def format_quantity(value: float, digits: int = 3) -> str:
    """360000000 -> '360M'; 1602850792 -> '1.6G'."""
    v = float(value)
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


@dataclass(frozen=True)
class Range:
    """A closed interval [low, high]; either end may be open (None)."""

    low: int | None = None
    high: int | None = None

    def __str__(self) -> str:
        lo = "" if self.low is None else format_quantity(self.low, 6)
        hi = "" if self.high is None else format_quantity(self.high, 6)
        return f"{lo}:{hi}"

    @property
    def unbounded(self) -> bool:
        return self.low is None and self.high is None

    def contains(self, values):
        """Vectorised membership test (works on numpy arrays and scalars)."""
        ok = values >= (self.low if self.low is not None else values)
        if self.high is not None:
            ok = ok & (values <= self.high)
        return ok


def parse_range(text: str, *, what: str = "range") -> Range:
    """Parse 'LOW:HIGH', 'LOW:', ':HIGH' (or ':' for no limit). Values must be positive."""
    if text is None:
        return Range()
    if ":" not in text:
        raise UsageProblem(
            f"cannot read {what} range {text!r}: expected LOW:HIGH such as 360M:400M, or :2M for an upper bound only"
        )
    lo_text, _, hi_text = text.partition(":")
    if ":" in hi_text:
        raise UsageProblem(f"cannot read {what} range {text!r}: more than one ':'")
    lo = parse_quantity(lo_text, what=f"{what} minimum") if lo_text.strip() else None
    hi = parse_quantity(hi_text, what=f"{what} maximum") if hi_text.strip() else None
    for v, end in ((lo, "minimum"), (hi, "maximum")):
        if v is not None and v <= 0:
            raise UsageProblem(f"{what} {end} must be positive, got {text!r}")
    if lo is not None and hi is not None and lo > hi:
        raise UsageProblem(f"{what} range {text!r} is empty: minimum is larger than maximum")
    return Range(lo, hi)
