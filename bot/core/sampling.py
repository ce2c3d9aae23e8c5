"""Temperature, top-k, top-p and seeded draws over a context's successor counts.

The arithmetic is the one a language model applies to its logits:

    p_i      = count_i / Σ count          (the learned frequencies)
    logit_i  = ln p_i
    scaled_i = logit_i / T
    q_i      = exp(scaled_i − max scaled) / Σ_j exp(scaled_j − max scaled)

then top-k, then top-p, then min-p (all on the temperature-scaled q, in that order),
then renormalisation. T = 0 is greedy decoding: the most likely candidate, ties going to
the candidate learned first.

Before the division by T the logits may be adjusted, in this order (see :class:`Knobs`):
a word already used n > 0 times in the output has its logit multiplied by the repetition
penalty R (ln p ≤ 0, so it falls), then lowered by presence + n × frequency penalty; a
bias is added; a banned word, and <end> while ``min_words`` masks it, get −∞.

Candidates that share a count share every one of those numbers at every temperature, so a
distribution is held as *count classes* — "37 candidates were each seen twice" — and a
step costs time in the number of distinct counts, not in the number of candidates (the
most frequent contexts of a large server have tens of thousands of candidates but only a
few hundred distinct counts). Within a class candidates are ordered by when they were
first learned, which makes every choice reproducible. A word whose logit a knob changed
leaves its class and is held alone (a :class:`Special`); there are at most as many of
those as the output has words plus the banned and biased ones, so a step's cost still
does not grow with the number of candidates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "MAX_LENGTH",
    "MAX_PENALTY",
    "MAX_TEMPERATURE",
    "MAX_TOP_K",
    "NO_KNOBS",
    "STAGES",
    "CountClass",
    "Draw",
    "Group",
    "InvalidOption",
    "Knobs",
    "Pipeline",
    "ScaledClass",
    "Special",
    "Stage",
    "classes_from_counts",
    "classes_of_shape",
    "count_classes",
    "draw",
    "draw_at",
    "entropy_bits",
    "greedy",
    "parse_bias",
    "parse_words",
    "pipeline",
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


def without(classes: Sequence[CountClass], *counts: int) -> tuple[CountClass, ...]:
    """The classes with one candidate of each of ``counts`` removed (a masked candidate,
    or one a knob took out of its class), so that :func:`scale` renormalises the others."""
    if not counts:
        return tuple(classes)
    taken: dict[int, int] = {}
    for count in counts:
        taken[count] = taken.get(count, 0) + 1
    kept = ((c.count, c.size - taken.get(c.count, 0)) for c in classes)
    return classes_of_shape(tuple((count, size) for count, size in kept if size > 0))


def classes_from_counts(counts: Iterable[int]) -> tuple[CountClass, ...]:
    """Group raw candidate counts into classes, most frequent first."""
    histogram: dict[int, int] = {}
    for c in counts:
        if c > 0:
            histogram[c] = histogram.get(c, 0) + 1
    return count_classes(histogram.items())


def count_classes(pairs: Iterable[tuple[int, int]]) -> tuple[CountClass, ...]:
    """(count, size) pairs (distinct counts) as classes, most frequent first.

    Equal classes and equal lists come back as shared objects: a store's read cache
    holds thousands of contexts but only hundreds of shapes among them (``((1, 1),)`` above
    all), and every full pass of the garbage collector walks each object it holds."""
    return classes_of_shape(tuple(sorted(pairs, key=lambda p: -p[0])))


@lru_cache(maxsize=1 << 14)
def classes_of_shape(shape: tuple[tuple[int, int], ...]) -> tuple[CountClass, ...]:
    """:func:`count_classes` of pairs already in order (as a store keeps them)."""
    return tuple(_count_class(c, n) for c, n in shape)


@lru_cache(maxsize=1 << 16)
def _count_class(count: int, size: int) -> CountClass:
    return CountClass(count, size)


#: The cut-off stages after the softmax, in the order they apply.
STAGES = ("top_k", "top_p", "min_p")
MAX_PENALTY = 10.0
MAX_BIAS = 10.0
MAX_LISTED = 20


@dataclass(frozen=True, slots=True)
class Knobs:
    """The settings-panel knobs beyond T, top-k and top-p, as the user gave them (words as
    typed; the caller resolves them to token ids)."""

    min_p: float | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ban: tuple[str, ...] = ()
    bias: tuple[tuple[str, float], ...] = ()

    def validated(self) -> Knobs:
        """A copy with every value checked; raises :class:`InvalidOption` for the user."""
        min_p = None if self.min_p is None else _finite(self.min_p, "min_p")
        if min_p is not None and not 0.0 <= min_p <= 1.0:
            raise InvalidOption(f"min_p must be from 0 to 1 (0 = off); got {min_p:g}.")
        r = _finite(self.repetition_penalty, "repetition_penalty")
        if not 1.0 <= r <= MAX_PENALTY:
            raise InvalidOption(
                f"repetition_penalty must be from 1 (off) to {MAX_PENALTY:g}; got {r:g}."
            )
        for name, value in (
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ):
            v = _finite(value, name)
            if not 0.0 <= v <= MAX_PENALTY:
                raise InvalidOption(f"{name} must be from 0 (off) to {MAX_PENALTY:g}; got {v:g}.")
        if len(self.ban) > MAX_LISTED or len(self.bias) > MAX_LISTED:
            raise InvalidOption(f"Ban or bias at most {MAX_LISTED} words.")
        for word, b in self.bias:
            v = _finite(b, f"The bias of “{word[:20]}”")
            if not -MAX_BIAS <= v <= MAX_BIAS:
                raise InvalidOption(
                    f"A bias must be from −{MAX_BIAS:g} to +{MAX_BIAS:g}; “{word[:20]}” got {v:g}."
                )
        return Knobs(
            min_p or None,
            r,
            float(self.presence_penalty),
            float(self.frequency_penalty),
            tuple(self.ban),
            tuple((w, float(b)) for w, b in self.bias),
        )

    @property
    def penalises(self) -> bool:
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )

    @property
    def adjusts(self) -> bool:
        """Whether any logit is changed (min-p alone changes none)."""
        return self.penalises or bool(self.ban) or any(b for _, b in self.bias)

    def penalised(self, logit: float, used: int) -> float:
        """The logit of a word used ``used`` times so far, after the three penalties."""
        if used <= 0:
            return logit
        return logit * self.repetition_penalty - (
            self.presence_penalty + used * self.frequency_penalty
        )

    def labels(self) -> list[str]:
        """Short descriptions of the knobs that are on, for summaries and titles."""
        out = []
        if self.min_p:
            out.append(f"min-p {self.min_p:g}")
        if self.repetition_penalty != 1.0:
            out.append(f"repetition ×{self.repetition_penalty:g}")
        if self.presence_penalty:
            out.append(f"presence −{self.presence_penalty:g}")
        if self.frequency_penalty:
            out.append(f"frequency −{self.frequency_penalty:g}·n")
        out += [f"bias {w} {b:+g}" for w, b in self.bias if b]
        out += [f"ban {w}" for w in self.ban]
        return out


NO_KNOBS = Knobs()


def parse_words(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "a, b c" or ["a", "b"] → ("a", "b"): the words of a ban list."""
    if text is None:
        return ()
    items = [text] if isinstance(text, str) else list(text)
    words = [w for item in items for w in item.replace(",", " ").split() if w]
    return tuple(dict.fromkeys(words))


def parse_bias(text: str | Sequence[str] | None) -> tuple[tuple[str, float], ...]:
    """ "cat=+2, dog=-1" or ["cat=+2"] → (("cat", 2.0), ("dog", -1.0))."""
    out: dict[str, float] = {}
    for item in parse_words(text):
        word, sep, value = item.rpartition("=")
        if not sep or not word:
            raise InvalidOption(
                f"Write a bias as WORD=NUMBER, for example cat=+2; got “{item[:30]}”."
            )
        try:
            out[word] = float(value)
        except ValueError:
            raise InvalidOption(f"“{value[:20]}” in “{item[:30]}” is not a number.") from None
    return tuple(out.items())


@dataclass(frozen=True, slots=True)
class Special:
    """A candidate out of its count class: a knob gave it a logit of its own."""

    token: int
    count: int
    logit: float  # adjusted ln p; −∞ when removed
    removed: str | None = None  # "ban" or "masked" when the logit is −∞


@dataclass(frozen=True, slots=True)
class Group:
    """Candidates sharing one probability after the pipeline: the kept members of a count
    class (``token`` None), or one special word."""

    count: int
    size: int
    prob: float
    token: int | None = None


@dataclass(frozen=True, slots=True)
class Stage:
    """After one stage: how many candidates remain and their share of the softmax."""

    stage: str
    kept: int
    mass: float


@dataclass(frozen=True, slots=True)
class Ranked:
    """One group before the cut-offs, in rank order."""

    count: int
    size: int
    token: int | None
    logit: float  # adjusted ln p (for a class: ln p)
    prob: float  # softmax after T, before the cut-offs (0 when removed)
    kept: tuple[int, ...]  # members still kept after each cut-off stage
    removed: str | None = None  # "ban"/"masked": removed before the softmax


@dataclass(frozen=True, slots=True)
class Pipeline:
    ranked: tuple[Ranked, ...]  # every group, most likely first; removed ones last
    stages: tuple[Stage, ...]  # "adjust" then the cut-offs that are on
    groups: tuple[Group, ...]  # what is sampled: kept, renormalised, in rank order

    def removed_by(self, index: int, position: int) -> str | None:
        """The stage that removed member ``position`` of ranked group ``index`` (None: kept)."""
        r = self.ranked[index]
        if r.removed:
            return r.removed
        for stage, kept in zip(self.stages[1:], r.kept, strict=True):
            if position >= kept:
                return stage.stage
        return None

    def final_prob(self, index: int, position: int) -> float:
        if self.removed_by(index, position) is not None:
            return 0.0
        r = self.ranked[index]
        return r.prob / self.stages[-1].mass


def pipeline(
    classes: Sequence[CountClass],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    specials: Sequence[Special] = (),
) -> Pipeline:
    """The whole documented order on count classes (without the specials) and specials.

    ``classes`` must be sorted by count, highest first (as the store returns them). The
    hot contexts (the start of a message above all) come back step after step with the
    same settings, so the result is remembered: it is a pure function of its arguments.
    """
    return _pipeline(tuple(classes), temperature, top_k, top_p, min_p, tuple(specials))


@lru_cache(maxsize=4096)
def _pipeline(
    classes: tuple[CountClass, ...],
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
    specials: tuple[Special, ...],
) -> Pipeline:
    total = sum(c.count * c.size for c in classes) + sum(s.count for s in specials)
    ref = classes[0].count if classes else 0
    ref_logit = math.log(ref / total) if ref else 0.0
    # Logits relative to the top class, with the subtraction done inside the logarithm:
    # ln(c_i/total) − ln(c_max/total) = ln(c_i/c_max). It stays exact for the classes and
    # finite for a tiny T where each scaled logit alone would overflow to −∞.
    entries: list[tuple[float, CountClass | Special]] = [
        (math.log(c.count / ref), c) for c in classes
    ]
    entries += [(s.logit - ref_logit, s) for s in specials]
    entries.sort(key=lambda e: -e[0])  # stable: classes first among equals
    live = [(rel, x) for rel, x in entries if rel != -math.inf]
    size = [x.size if isinstance(x, CountClass) else 1 for _, x in live]
    if not live:
        removed = tuple(_ranked(x, total, 0.0, (), ref_logit) for _, x in entries)
        return Pipeline(removed, (Stage("adjust", 0, 0.0),), ())
    stages = [Stage("adjust", sum(size), 1.0)]
    kept_by_stage: list[list[int]] = []
    if temperature == 0.0:
        probs = [1.0] + [0.0] * (len(live) - 1)
        kept = [1] + [0] * (len(live) - 1)
        kept_by_stage.append(kept)
        stages.append(Stage("greedy", 1, 1.0))
    else:
        top = live[0][0]
        weights = [math.exp((rel - top) / temperature) for rel, _ in live]
        z = math.fsum(w * n for w, n in zip(weights, size, strict=True))
        probs = [w / z for w in weights]
        kept = list(size)
        for stage, on in zip(STAGES, (top_k, top_p, min_p), strict=True):
            if on is None:
                continue
            if stage == "top_k":
                kept = _keep_first(kept, int(on))
            elif stage == "top_p":
                kept = _nucleus(kept, probs, float(on))
            else:
                floor = float(on) * probs[0] * (1 - 1e-12)
                kept = [k if p >= floor else 0 for k, p in zip(kept, probs, strict=True)]
            kept_by_stage.append(kept)
            mass = math.fsum(k * p for k, p in zip(kept, probs, strict=True))
            stages.append(Stage(stage, sum(kept), mass))
    mass = stages[-1].mass
    groups = tuple(
        Group(x.count, k, p / mass, None if isinstance(x, CountClass) else x.token)
        for (_, x), k, p in zip(live, kept, probs, strict=True)
        if k > 0
    )
    per_group = list(zip(*kept_by_stage, strict=True)) if kept_by_stage else [()] * len(live)
    ranked: list[Ranked] = [
        _ranked(x, total, p, tuple(ks), ref_logit)
        for (_, x), p, ks in zip(live, probs, per_group, strict=True)
    ]
    ranked += [_ranked(x, total, 0.0, (), ref_logit) for rel, x in entries if rel == -math.inf]
    return Pipeline(tuple(ranked), tuple(stages), groups)


def _ranked(
    x: CountClass | Special, total: int, prob: float, kept: tuple[int, ...], ref_logit: float
) -> Ranked:
    if isinstance(x, CountClass):
        return Ranked(x.count, x.size, None, math.log(x.count / total), prob, kept)
    return Ranked(x.count, 1, x.token, x.logit, prob, kept, x.removed)


def scale(
    classes: Sequence[CountClass],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> tuple[ScaledClass, ...]:
    """Probabilities per candidate after temperature and the cut-offs, renormalised.

    ``classes`` must be sorted by count, highest first (as the store returns them). The
    result is a prefix of ``classes``; its last class may be cut short by top-k/top-p.
    """
    if not classes:
        return ()
    return tuple(
        ScaledClass(g.count, g.size, g.prob)
        for g in pipeline(classes, temperature, top_k, top_p, min_p).groups
    )


def _keep_first(kept: list[int], k: int) -> list[int]:
    out = []
    for size in kept:
        take = max(0, min(size, k))
        out.append(take)
        k -= take
    return out


def _nucleus(kept: list[int], probs: list[float], p: float) -> list[int]:
    """Smallest prefix of candidates whose probability reaches ``p`` (relative to the
    mass that survived top-k, so the two cut-offs compose the usual way)."""
    mass = math.fsum(k * q for k, q in zip(kept, probs, strict=True))
    target = p * mass
    out: list[int] = []
    cumulative = 0.0
    done = False
    for size, q in zip(kept, probs, strict=True):
        if done or size == 0:
            out.append(0)
            continue
        class_mass = size * q
        if cumulative + class_mass >= target * (1 - 1e-12):
            # Relative tolerance: a float-rounding shortfall must not pull in an extra word.
            need = math.ceil((target - cumulative) / q * (1 - 1e-12))
            out.append(min(size, max(1, need)))
            done = True
            continue
        out.append(size)
        cumulative += class_mass
    return out


def draw(
    scaled: Sequence[ScaledClass | Group],
    original: Sequence[CountClass] | None,
    rng: random.Random,
) -> Draw:
    """Sample one candidate with a single ``rng.random()`` call (see :func:`draw_at`).

    Only ``random()`` is used because it is the one part of :mod:`random` whose sequence
    Python promises to keep across versions; the same seed thus gives the same text on any
    machine.
    """
    if not scaled:
        raise ValueError("cannot draw from an empty distribution")
    return draw_at(scaled, rng.random())


def draw_at(scaled: Sequence[ScaledClass | Group], u: float) -> Draw:
    """The candidate a uniform number ``u`` in [0, 1) falls on. The leftover of ``u`` picks
    the member within the group, which is exactly uniform because all members carry the
    same probability. Kept groups are a prefix of the ranking, every one but the last
    whole, so the rank is the sizes before it plus the offset."""
    if not scaled:
        raise ValueError("cannot draw from an empty distribution")
    before = 0
    for index, cls in enumerate(scaled):
        mass = cls.size * cls.prob
        if u < mass or index == len(scaled) - 1:
            offset = min(cls.size - 1, max(0, int(u / cls.prob)))
            return Draw(index, offset, cls.prob, before + offset + 1)
        u -= mass
        before += cls.size
    raise AssertionError("unreachable")  # pragma: no cover


def greedy(scaled: Sequence[ScaledClass | Group]) -> Draw:
    """The most likely candidate (the first learned among equals)."""
    return Draw(0, 0, scaled[0].prob, 1)


def entropy_bits(scaled: Sequence[ScaledClass]) -> float:
    """Shannon entropy of the distribution in bits; 2**H is the effective number of choices."""
    h = -math.fsum(c.size * c.prob * math.log2(c.prob) for c in scaled if c.prob > 0.0)
    return max(0.0, h)
