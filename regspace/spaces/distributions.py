"""Vectorised parameter distributions, closed interval [low, high] quantised to q.

They follow the reference sampler (pycls ``sweep/random.py``) value for value in distribution:
- ``uniform``: draw in [low, high + q), floor to q — every multiple of q in [low, high] equally likely;
- ``log_uniform``: draw log-uniformly in (low - q*, high] with q* = min(q, low/2), ceil to q;
- ``power2_uniform``: a uniformly chosen power of two in [low, high];
- ``power2_or_log_uniform``: a power of two in [low, high]; if it is >= q, replaced by
  ``log_uniform(max(low, q), high, min(high, q))``;
- ``choice``: one of a finite list of values, uniformly.
Quantised values are exact decimals (24.5, not 24.500000000000004), as the reference's Decimal arithmetic.
``uniform`` and ``log_uniform`` with no quantum (q = None) are continuous on [low, high]: the laws of recipe
fields drawn per model (regspace.hparams, NDS §5); a design parameter always has a quantum.

The quantum must divide the bounds (:func:`check_quantum`): a declaration such as uniform 12..100 with
q = 8 is refused in one line that names the nearest ranges that are allowed. Why refuse rather than sample
the multiples of q inside the bounds: the laws above are the reference's only when q divides the bounds
(otherwise floor/ceil to q leave the interval: 8 and 104 for 12..100, about 8 % of draws), so any
in-bounds reading would be a law of our own that the declaration does not state, and the text that
`regspace spaces` prints would no longer be the set sampled. Refusing keeps "what you declare is what is
sampled" for every kind, and makes the per-stage law and its non-decreasing variant (which enumerates
the same multiples of q) the same set by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from regspace.errors import UsageProblem

KINDS = ("uniform", "log_uniform", "power2_uniform", "power2_or_log_uniform", "choice")


def _quantize(f: np.ndarray, q: float, op) -> np.ndarray:
    """op(f / q) * q, computed so that the result is the double nearest to the exact decimal."""
    frac = Fraction(str(q))
    if frac.denominator == 1:
        return op(f / q).astype(np.int64) * int(frac)
    # q = p / r: k * q == k * p / r, one correctly rounded division.
    k = op(f * frac.denominator / frac.numerator)
    return k * frac.numerator / frac.denominator


def _is_int(x) -> bool:
    return float(x).is_integer()


def _is_power2(x: float) -> bool:
    return x > 0 and math.log2(x).is_integer()


@dataclass(frozen=True)
class Param:
    """One sampled parameter: its distribution and domain."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    q: float | None = None
    values: tuple | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UsageProblem(
                f"parameter {self.name}: unknown distribution {self.kind!r}; use one of {', '.join(KINDS)}"
            )
        if self.kind == "choice":
            if not self.values:
                raise UsageProblem(f"parameter {self.name}: 'choice' needs a non-empty list of values")
            return
        continuous = self.q is None and self.kind in ("uniform", "log_uniform")
        if self.low is None or self.high is None or (self.q is None and not continuous):
            raise UsageProblem(f"parameter {self.name}: {self.kind} needs low, high and q")
        if not ((continuous or self.q > 0) and self.low <= self.high):
            raise UsageProblem(f"parameter {self.name}: need q > 0 and low <= high")
        if self.kind != "uniform" and self.low <= 0:
            raise UsageProblem(f"parameter {self.name}: {self.kind} needs low > 0")
        if self.kind.startswith("power2") and not all(_is_power2(v) for v in (self.low, self.high)):
            raise UsageProblem(f"parameter {self.name}: {self.kind} needs powers of two for low and high")
        if not continuous:
            check_quantum(self)

    @property
    def integer(self) -> bool:
        if self.kind == "choice":
            return all(_is_int(v) for v in self.values)
        if self.q is None:
            return False
        return _is_int(self.q) and _is_int(self.low) and _is_int(self.high)

    def support(self) -> np.ndarray | None:
        """The finite set of values when every value is equally likely (uniform, choice), else None."""
        if self.kind == "choice":
            return np.asarray(self.values)
        if self.kind == "uniform" and self.q is not None:
            k = np.arange(round(self.low / self.q), round(self.high / self.q) + 1)
            frac = Fraction(str(self.q))
            return k * int(frac) if frac.denominator == 1 else k * frac.numerator / frac.denominator
        return None

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        if self.kind == "choice":
            return np.asarray(self.values)[rng.integers(0, len(self.values), size)]
        if self.q is None:  # continuous (a recipe field's law)
            if self.kind == "uniform":
                return rng.uniform(self.low, self.high, size)
            return np.exp(rng.uniform(math.log(self.low), math.log(self.high), size))
        if self.kind == "uniform":
            return _quantize(rng.uniform(self.low, self.high + self.q, size), self.q, np.floor)
        if self.kind == "log_uniform":
            return log_uniform(rng, self.low, self.high, self.q, size)
        if self.kind == "power2_uniform":
            return power2_uniform(rng, self.low, self.high, self.q, size)
        return power2_or_log_uniform(rng, self.low, self.high, self.q, size)

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(format(v, "g") for v in self.values) + "}"
        lo, hi = (format(v, "g") for v in (self.low, self.high))
        name = {
            "uniform": "uniform",
            "log_uniform": "log-uniform",
            "power2_uniform": "power-of-2",
            "power2_or_log_uniform": "power-of-2-or-log-uniform",
        }[self.kind]
        return f"{name} [{lo}, {hi}]" + ("" if self.q is None else f", q={self.q:g}")


def _multiple(x: float, q: float) -> bool:
    return (Fraction(str(x)) / Fraction(str(q))).denominator == 1


def _near(x: float, q: float, op) -> str:
    k = op(Fraction(str(x)) / Fraction(str(q)))
    return format(float(k * Fraction(str(q))), "g")


def check_quantum(p: Param) -> None:
    """Raise UsageProblem (one line) unless p's quantum q divides the bounds its law floors or ceils to q.

    uniform and log_uniform: low and high multiples of q. power2_uniform: q divides low (then every power of
    two in [low, high] is a multiple of q). power2_or_log_uniform: powers of two below q are kept as they
    are (the reference's rule); when q <= high, high and max(low, q) must be multiples of q.
    """
    lo, hi, q = p.low, p.high, p.q
    if p.kind == "power2_uniform":
        bad = [] if _multiple(lo, q) else ["low"]
    elif p.kind == "power2_or_log_uniform":
        bad = [] if q > hi else [n for n, v in (("low", max(lo, q)), ("high", hi)) if not _multiple(v, q)]
    else:
        bad = [n for n, v in (("low", lo), ("high", hi)) if not _multiple(v, q)]
    if not bad:
        return
    up, down = _near(lo, q, math.ceil), _near(hi, q, math.floor)
    raise UsageProblem(
        f"parameter {p.name}: {' and '.join(bad)} must be {'multiples' if len(bad) > 1 else 'a multiple'} of q = {q:g} "
        f"(the law would draw outside [{lo:g}, {hi:g}]); use for example low = {up}, high = {down}"
    )


def log_uniform(rng, low, high, q, size) -> np.ndarray:
    lo = low - min(q, low / 2)
    f = np.exp(-rng.uniform(-math.log(high), -math.log(lo), size))
    out = _quantize(f, q, np.ceil)
    # exp(log(high)) can overshoot by an ulp; keep the closed interval closed.
    return np.minimum(out, _quantize(np.asarray(high, dtype=np.float64), q, np.round))


def power2_uniform(rng, low, high, q, size) -> np.ndarray:
    f2 = np.floor(rng.uniform(math.log2(low), math.log2(high) + 1, size))
    return _quantize(np.minimum(2.0**f2, high), q, np.floor)


def power2_or_log_uniform(rng, low, high, q, size) -> np.ndarray:
    f = power2_uniform(rng, low, high, low, size)
    big = f >= q
    if big.any():
        f = f.astype(np.result_type(f, float) if not _is_int(q) else f.dtype)
        f[big] = log_uniform(rng, max(low, q), high, min(high, q), int(big.sum()))
    return f


def param_from_dict(name: str, spec: dict, *, default_q: float | None = 1) -> Param:
    """Build a Param from a TOML table such as {dist = "log_uniform", low = 8, high = 256, q = 8}.
    ``default_q``: the quantum when the table gives none (None: continuous, for recipe fields)."""
    allowed = {"dist", "low", "high", "q", "values"}
    unknown = set(spec) - allowed
    if unknown:
        raise UsageProblem(
            f"parameter {name}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    kind = spec.get("dist", "choice" if "values" in spec else "uniform")
    values = spec.get("values")
    return Param(
        name,
        kind,
        low=spec.get("low"),
        high=spec.get("high"),
        q=spec.get("q", default_q),
        values=tuple(values) if values is not None else None,
    )
