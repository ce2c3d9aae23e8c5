"""Temperature, top-k, top-p and seeded draws over a context's successor counts.

The arithmetic is the one a language model applies to its logits:

    p_i      = count_i / Σ count          (the learned frequencies)
    logit_i  = ln p_i
    scaled_i = logit_i / T
    q_i      = exp(scaled_i − max scaled) / Σ_j exp(scaled_j − max scaled)

then top-k, then top-p (both on the temperature-scaled q, in that order), then
renormalisation. T = 0 is greedy decoding: the most frequent candidate, ties going to the
candidate learned first.

Candidates that share a count share every one of those numbers at every temperature, so a
distribution is held as *count classes* — "37 candidates were each seen twice" — and a
step costs time in the number of distinct counts, not in the number of candidates (the
most frequent contexts of a large server have tens of thousands of candidates but only a
few hundred distinct counts). Within a class candidates are ordered by when they were
first learned, which makes every choice reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_LENGTH",
    "MAX_TEMPERATURE",
    "MAX_TOP_K",
    "CountClass",
    "Draw",
    "InvalidOption",
    "ScaledClass",
    "classes_from_counts",
    "draw",
    "entropy_bits",
    "greedy",
    "scale",
    "validate_length",
    "validate_min_words",
    "validate_temperature",
    "validate_top_k",
    "validate_top_p",
    "without",
]

#: Highest temperature accepted. At 5 the learned distribution is visibly close to uniform,
#: which is the point a class should see; beyond it every output is word salad.
MAX_TEMPERATURE = 5.0
#: Longest generation in tokens; 100 chat words stay well inside Discord's 2,000 characters.
MAX_LENGTH = 100
MAX_TOP_K = 10_000


class InvalidOption(ValueError):
    """An option a user typed is out of range; the message is safe to show them."""


@dataclass(frozen=True, slots=True)
class CountClass:
    """``size`` candidates that each followed the context ``count`` times."""

    count: int
    size: int


@dataclass(frozen=True, slots=True)
class ScaledClass:
    """A count class after temperature and cut-offs: each kept candidate has ``prob``."""

    count: int
    size: int  # candidates kept (top-k/top-p may keep only the first few of a class)
    prob: float  # probability of each one of them


@dataclass(frozen=True, slots=True)
class Draw:
    """One sampled choice: which class, which member of it, and how likely it was."""

    class_index: int
    offset: int  # position inside the class, in learning order
    prob: float
    rank: int  # 1-based rank among all candidates of the distribution


def _finite(value: float, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidOption(f"{name} must be a finite number, not {value!r}.")
    return float(value)


def validate_temperature(temperature: float) -> float:
    t = _finite(temperature, "Temperature")
    if not 0.0 <= t <= MAX_TEMPERATURE:
        raise InvalidOption(
            f"Temperature must be between 0 and {MAX_TEMPERATURE:g} (0 = always the most "
            f"likely word, 1 = the learned frequencies); got {t:g}."
        )
    return t


def validate_top_k(top_k: int | None) -> int | None:
    if top_k is None or (top_k == 0 and not isinstance(top_k, bool)):
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidOption(f"top_k must be a whole number from 1 to {MAX_TOP_K} (or 0 for off).")
    return top_k


def validate_top_p(top_p: float | None) -> float | None:
    if top_p is None:
        return None
    p = _finite(top_p, "top_p")
    if not 0.0 < p <= 1.0:
        raise InvalidOption(f"top_p must be greater than 0 and at most 1; got {p:g}.")
    return None if p == 1.0 else p


def validate_length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
        raise InvalidOption(f"Length must be a whole number of words from 1 to {MAX_LENGTH}.")
    return length


def validate_min_words(min_words: int, length: int) -> int:
    if (
        isinstance(min_words, bool)
        or not isinstance(min_words, int)
        or not 0 <= min_words <= length
    ):
        raise InvalidOption(
            f"min_words must be a whole number from 0 to the length ({length}); got {min_words!r}."
        )
    return min_words


def without(classes: Sequence[CountClass], count: int) -> tuple[CountClass, ...]:
    """The classes with one candidate of ``count`` removed (a masked candidate: logit −∞),
    so that :func:`scale` renormalises over the others."""
    out = []
    for c in classes:
        size = c.size - 1 if c.count == count else c.size
        if size > 0:
            out.append(CountClass(c.count, size))
    return tuple(out)


def classes_from_counts(counts: Iterable[int]) -> tuple[CountClass, ...]:
    """Group raw candidate counts into classes, most frequent first."""
    histogram: dict[int, int] = {}
    for c in counts:
        if c > 0:
            histogram[c] = histogram.get(c, 0) + 1
    return tuple(CountClass(c, n) for c, n in sorted(histogram.items(), reverse=True))


def scale(
    classes: Sequence[CountClass],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> tuple[ScaledClass, ...]:
    """Probabilities per candidate after temperature, top-k and top-p, renormalised.

    ``classes`` must be sorted by count, highest first (as the store returns them). The
    result is a prefix of ``classes``; its last class may be cut short by top-k/top-p.
    """
    if not classes:
        return ()
    if temperature == 0.0:
        return (ScaledClass(classes[0].count, 1, 1.0),)
    # exp(scaled_i − max scaled) with the subtraction done inside the logarithm:
    # ln(c_i/total)/T − ln(c_max/total)/T = ln(c_i/c_max)/T. Equal in exact arithmetic, but
    # it stays finite for a tiny T where each scaled logit alone would overflow to −∞.
    top = classes[0].count
    weights = [math.exp(math.log(c.count / top) / temperature) for c in classes]
    z = math.fsum(w * c.size for w, c in zip(weights, classes, strict=True))
    kept = [ScaledClass(c.count, c.size, w / z) for w, c in zip(weights, classes, strict=True)]

    if top_k is not None:
        kept = _keep_first(kept, top_k)
    if top_p is not None:
        kept = _nucleus(kept, top_p)
    mass = math.fsum(k.size * k.prob for k in kept)
    return tuple(ScaledClass(k.count, k.size, k.prob / mass) for k in kept)


def _keep_first(kept: list[ScaledClass], k: int) -> list[ScaledClass]:
    out: list[ScaledClass] = []
    for cls in kept:
        if k <= 0:
            break
        take = min(cls.size, k)
        out.append(ScaledClass(cls.count, take, cls.prob))
        k -= take
    return out


def _nucleus(kept: list[ScaledClass], p: float) -> list[ScaledClass]:
    """Smallest prefix of candidates whose probability reaches ``p`` (relative to the
    mass that survived top-k, so the two cut-offs compose the usual way)."""
    mass = math.fsum(c.size * c.prob for c in kept)
    target = p * mass
    out: list[ScaledClass] = []
    cumulative = 0.0
    for cls in kept:
        class_mass = cls.size * cls.prob
        if cumulative + class_mass >= target * (1 - 1e-12):
            # Relative tolerance: a float-rounding shortfall must not pull in an extra word.
            need = math.ceil((target - cumulative) / cls.prob * (1 - 1e-12))
            out.append(ScaledClass(cls.count, min(cls.size, max(1, need)), cls.prob))
            return out
        out.append(cls)
        cumulative += class_mass
    return out


def draw(scaled: Sequence[ScaledClass], original: Sequence[CountClass], rng: random.Random) -> Draw:
    """Sample one candidate with a single ``rng.random()`` call.

    Only ``random()`` is used because it is the one part of :mod:`random` whose sequence
    Python promises to keep across versions; the same seed thus gives the same text on any
    machine. The leftover of the uniform number picks the member within the class, which
    is exactly uniform because all members carry the same probability.
    """
    if not scaled:
        raise ValueError("cannot draw from an empty distribution")
    u = rng.random()
    before = 0
    for index, cls in enumerate(scaled):
        mass = cls.size * cls.prob
        if u < mass or index == len(scaled) - 1:
            offset = min(cls.size - 1, max(0, int(u / cls.prob)))
            return Draw(index, offset, cls.prob, before + offset + 1)
        u -= mass
        before += original[index].size
    raise AssertionError("unreachable")  # pragma: no cover


def greedy(scaled: Sequence[ScaledClass]) -> Draw:
    """The most likely candidate (the first learned among equals)."""
    return Draw(0, 0, scaled[0].prob, 1)


def entropy_bits(scaled: Sequence[ScaledClass]) -> float:
    """Shannon entropy of the distribution in bits; 2**H is the effective number of choices."""
    h = -math.fsum(c.size * c.prob * math.log2(c.prob) for c in scaled if c.prob > 0.0)
    return max(0.0, h)
