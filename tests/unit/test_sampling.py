"""Temperature, top-k, top-p and seeded draws, checked against their definitions.

Every expected value is recomputed here from the formula in the module docstring,

    q_i = (count_i / total) ** (1 / T) / Σ_j (count_j / total) ** (1 / T)

over a per-candidate expansion of the count classes, never copied from a run of the code.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.sampling import (
    MAX_TEMPERATURE,
    MAX_TOP_K,
    CountClass,
    InvalidOption,
    ScaledClass,
    classes_from_counts,
    classes_of_shape,
    count_classes,
    draw,
    entropy_bits,
    greedy,
    scale,
    validate_length,
    validate_temperature,
    validate_top_k,
    validate_top_p,
)

PROPS = settings(max_examples=200, deadline=None)

counts_st = st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30)
wide_counts_st = st.lists(
    st.one_of(st.integers(1, 50), st.integers(1, 10**6)), min_size=1, max_size=40
)
temperature_st = st.floats(min_value=0.05, max_value=MAX_TEMPERATURE)


# ---------------------------------------------------------------------------- helpers


def expand(scaled: Sequence[ScaledClass]) -> list[tuple[int, float]]:
    """Per-candidate (count, prob), in rank order."""
    return [(c.count, c.prob) for c in scaled for _ in range(c.size)]


def sorted_counts(counts: Sequence[int]) -> list[int]:
    return sorted(counts, reverse=True)


def reference_softmax(counts: Sequence[int], temperature: float) -> list[float]:
    """q_i for every candidate (sorted by count, highest first), straight from the formula,
    computed per candidate (not per class) in log space."""
    cs = sorted_counts(counts)
    total = sum(cs)
    logits = [math.log(c / total) / temperature for c in cs]
    shift = max(logits)
    weights = [math.exp(x - shift) for x in logits]
    z = math.fsum(weights)
    return [w / z for w in weights]


def total_mass(scaled: Sequence[ScaledClass]) -> float:
    return math.fsum(c.size * c.prob for c in scaled)


def entropy_of(probs: Sequence[float]) -> float:
    return -math.fsum(p * math.log2(p) for p in probs if p > 0)


class ScriptedRandom(random.Random):
    """A random.Random whose random() returns given values (to aim at one candidate)."""

    def __init__(self, values: Sequence[float]) -> None:
        super().__init__(0)
        self._values = list(values)

    def random(self) -> float:
        return self._values.pop(0)


# ---------------------------------------------------------------------------- classes


@given(counts_st)
@PROPS
def test_classes_from_counts_is_a_histogram_most_frequent_first(counts: list[int]) -> None:
    classes = classes_from_counts(counts)
    assert [c.count for c in classes] == sorted(set(counts), reverse=True)
    assert {c.count: c.size for c in classes} == dict(Counter(counts))


def test_classes_from_counts_ignores_zero_and_negative_counts() -> None:
    assert classes_from_counts([3, 0, 1, -2, 3]) == (CountClass(3, 2), CountClass(1, 1))


@given(counts_st)
@PROPS
def test_equal_class_lists_are_one_shared_object_whatever_the_order_given(
    counts: list[int],
) -> None:
    """A read cache holds thousands of contexts of a few hundred shapes: each shape is one
    object, so the collector has one to walk, and so is each distinct class."""
    pairs = list(Counter(counts).items())
    classes = count_classes(pairs)
    assert classes == classes_from_counts(counts)
    assert count_classes(reversed(pairs)) is classes
    assert classes_of_shape(tuple((c.count, c.size) for c in classes)) is classes
    for c in classes:
        assert count_classes([(c.count, c.size)])[0] is c


def test_scale_of_nothing_is_nothing() -> None:
    assert scale((), 1.0) == ()


# ---------------------------------------------------------------------------- temperature


@given(wide_counts_st, st.floats(min_value=1e-3, max_value=MAX_TEMPERATURE))
@PROPS
def test_probabilities_sum_to_one(counts: list[int], temperature: float) -> None:
    scaled = scale(classes_from_counts(counts), temperature)
    assert math.isclose(total_mass(scaled), 1.0, rel_tol=0, abs_tol=1e-9)
    assert sum(c.size for c in scaled) == len(counts)
    assert all(0.0 <= c.prob <= 1.0 for c in scaled)


@given(
    wide_counts_st,
    st.floats(min_value=1e-3, max_value=MAX_TEMPERATURE),
    st.one_of(st.none(), st.integers(1, 50)),
    st.one_of(st.none(), st.floats(min_value=0.01, max_value=1.0)),
)
@PROPS
def test_probabilities_sum_to_one_with_cut_offs(
    counts: list[int], temperature: float, top_k: int | None, top_p: float | None
) -> None:
    scaled = scale(classes_from_counts(counts), temperature, top_k, top_p)
    assert math.isclose(total_mass(scaled), 1.0, rel_tol=0, abs_tol=1e-9)


@given(wide_counts_st)
@PROPS
def test_temperature_one_reproduces_the_learned_frequencies(counts: list[int]) -> None:
    total = sum(counts)
    got = expand(scale(classes_from_counts(counts), 1.0))
    assert [c for c, _ in got] == sorted_counts(counts)
    for count, prob in got:
        assert math.isclose(prob, count / total, rel_tol=1e-12)


@given(counts_st, temperature_st)
@PROPS
def test_matches_the_softmax_formula(counts: list[int], temperature: float) -> None:
    got = [p for _, p in expand(scale(classes_from_counts(counts), temperature))]
    want = reference_softmax(counts, temperature)
    for g, w in zip(got, want, strict=True):
        assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-300)


def test_hand_calculated_example() -> None:
    # counts 2 and 1 at T = 0.5: q ∝ (2/3)^2 : (1/3)^2 = 4 : 1.
    scaled = scale(classes_from_counts([2, 1]), 0.5)
    assert [c.count for c in scaled] == [2, 1]
    assert math.isclose(scaled[0].prob, 4 / 5, rel_tol=1e-12)
    assert math.isclose(scaled[1].prob, 1 / 5, rel_tol=1e-12)
    # At T = 2: q ∝ sqrt(2) : 1.
    scaled = scale(classes_from_counts([2, 1]), 2.0)
    assert math.isclose(scaled[0].prob, math.sqrt(2) / (math.sqrt(2) + 1), rel_tol=1e-12)


@given(counts_st, temperature_st, temperature_st)
@PROPS
def test_lowering_temperature_never_lowers_the_top_probability(
    counts: list[int], t1: float, t2: float
) -> None:
    low, high = sorted((t1, t2))
    classes = classes_from_counts(counts)
    top_low = scale(classes, low)[0].prob
    top_high = scale(classes, high)[0].prob
    # Mathematically top_low >= top_high; 1e-12 relative slack absorbs float rounding.
    assert top_low >= top_high * (1 - 1e-12)


@given(counts_st)
@PROPS
def test_near_zero_temperature_concentrates_on_the_argmax(counts: list[int]) -> None:
    t = 1e-3
    classes = classes_from_counts(counts)
    scaled = scale(classes, t)
    top_mass = scaled[0].size * scaled[0].prob
    # Derived bound: every other candidate has q_j / q_top = (c_j / c_max)^(1/T) with
    # c_j <= c_max - 1, so the mass outside the top class is at most
    # (n - 1) * ((c_max - 1) / c_max)^(1/T).
    c_max, n = max(counts), len(counts)
    bound = (n - 1) * ((c_max - 1) / c_max) ** (1 / t)
    assert scaled[0].count == c_max
    assert 1.0 - top_mass <= bound + 1e-12
    # Within the top class the mass is shared equally.
    assert math.isclose(scaled[0].prob * scaled[0].size, top_mass)


@given(counts_st)
@PROPS
def test_temperature_zero_is_exactly_one_candidate(counts: list[int]) -> None:
    scaled = scale(classes_from_counts(counts), 0.0, top_k=3, top_p=0.5)
    assert scaled == (ScaledClass(max(counts), 1, 1.0),)
    assert greedy(scaled).rank == 1
    assert greedy(scaled).prob == 1.0


@pytest.mark.parametrize("t", [1e-320, 5e-324])
def test_tiny_positive_temperature_still_gives_a_distribution(t: float) -> None:
    assert validate_temperature(t) == t
    scaled = scale(classes_from_counts([2, 1]), t)
    probs = [c.prob for c in scaled]
    assert all(math.isfinite(p) for p in probs)
    assert math.isclose(total_mass(scaled), 1.0)
    assert probs[0] == pytest.approx(1.0)


@given(counts_st, temperature_st, temperature_st)
@PROPS
def test_entropy_increases_with_temperature(counts: list[int], t1: float, t2: float) -> None:
    low, high = sorted((t1, t2))
    classes = classes_from_counts(counts)
    assert entropy_bits(scale(classes, low)) <= entropy_bits(scale(classes, high)) + 1e-9


@given(counts_st)
@PROPS
def test_high_temperature_is_close_to_uniform(counts: list[int]) -> None:
    n = len(counts)
    classes = classes_from_counts(counts)
    at_5 = scale(classes, 5.0)
    at_1 = scale(classes, 1.0)
    # Derived bound: q_i = c_i^(1/T) / Σ c_j^(1/T), and n·c_min^(1/T) <= Σ <= n·c_max^(1/T),
    # so every q_i lies in [1/(n·r), r/n] with r = (c_max / c_min)^(1/T). With counts up to
    # 50 and T = 5, r <= 50^0.2 ≈ 2.19. Shannon entropy is at least the min-entropy
    # -log2(max q) >= log2(n) - log2(r).
    r = (max(counts) / min(counts)) ** (1 / 5)
    for c in at_5:
        assert 1 / (n * r) * (1 - 1e-12) <= c.prob <= r / n * (1 + 1e-12)
    h5, h1 = entropy_bits(at_5), entropy_bits(at_1)
    assert h5 >= math.log2(n) - math.log2(r) - 1e-9
    assert h5 <= math.log2(n) + 1e-9
    # Closer to uniform than the learned distribution (distance = log2 n − H).
    assert h5 >= h1 - 1e-9


def test_entropy_bits_of_known_distributions() -> None:
    # Four equal candidates: exactly 2 bits; one certain candidate: 0 bits.
    assert math.isclose(entropy_bits(scale(classes_from_counts([7, 7, 7, 7]), 1.0)), 2.0)
    assert entropy_bits(scale(classes_from_counts([9]), 1.0)) == 0.0
    # counts 2, 1: H = log2 3 − 2/3.
    h = entropy_bits(scale(classes_from_counts([2, 1]), 1.0))
    assert math.isclose(h, math.log2(3) - 2 / 3, rel_tol=1e-12)


# ---------------------------------------------------------------------------- top-k / top-p


@given(counts_st, temperature_st, st.integers(1, 40))
@PROPS
def test_top_k_keeps_the_k_most_frequent(counts: list[int], temperature: float, k: int) -> None:
    got = expand(scale(classes_from_counts(counts), temperature, top_k=k))
    assert len(got) == min(k, len(counts))
    assert [c for c, _ in got] == sorted_counts(counts)[:k]
    # Renormalised temperature probabilities of the survivors.
    q = reference_softmax(counts, temperature)[:k]
    for (_, prob), w in zip(got, q, strict=True):
        assert math.isclose(prob, w / math.fsum(q), rel_tol=1e-9)


@given(
    counts_st,
    temperature_st,
    st.floats(min_value=0.01, max_value=0.999),
    st.one_of(st.none(), st.integers(1, 40)),
)
@PROPS
def test_top_p_keeps_the_smallest_prefix_reaching_p(
    counts: list[int], temperature: float, p: float, k: int | None
) -> None:
    # Brute force on per-candidate lists: temperature first, then top-k, then top-p.
    q = reference_softmax(counts, temperature)
    if k is not None:
        q = q[:k]
    mass = math.fsum(q)
    got = expand(scale(classes_from_counts(counts), temperature, top_k=k, top_p=p))
    n = len(got)
    assert 1 <= n <= len(q)
    assert [c for c, _ in got] == sorted_counts(counts)[:n]
    # The kept prefix reaches p of the mass (1e-9 slack for rounding) ...
    assert math.fsum(q[:n]) >= p * mass * (1 - 1e-9)
    # ... and without its last candidate it would not.
    assert math.fsum(q[: n - 1]) < p * mass * (1 + 1e-9)
    kept = math.fsum(q[:n])
    for (_, prob), w in zip(got, q[:n], strict=True):
        assert math.isclose(prob, w / kept, rel_tol=1e-9)


def test_cut_offs_apply_after_temperature() -> None:
    # counts 6, 3, 1. At T = 1, q = 0.6, 0.3, 0.1: top-p 0.7 needs two candidates.
    # At T = 0.5, q ∝ 36 : 9 : 1, so q_top = 36/46 ≈ 0.78 alone reaches 0.7.
    classes = classes_from_counts([6, 3, 1])
    at_1 = expand(scale(classes, 1.0, top_p=0.7))
    assert [c for c, _ in at_1] == [6, 3]
    assert math.isclose(at_1[0][1], 0.6 / 0.9) and math.isclose(at_1[1][1], 0.3 / 0.9)
    assert expand(scale(classes, 0.5, top_p=0.7)) == [(6, 1.0)]
    # top-k 2 at T = 0.5 renormalises the tempered values: 36/45 and 9/45.
    at_half_k2 = expand(scale(classes, 0.5, top_k=2))
    assert math.isclose(at_half_k2[0][1], 36 / 45) and math.isclose(at_half_k2[1][1], 9 / 45)


def test_top_p_can_cut_inside_a_class() -> None:
    # Ten equal candidates, p = 0.35: 4 of them (0.4) are needed, 3 (0.3) are not enough.
    scaled = scale(classes_from_counts([5] * 10), 1.0, top_p=0.35)
    assert scaled == (ScaledClass(5, 4, 0.25),)


def test_top_p_exactly_on_a_boundary_does_not_take_an_extra_candidate() -> None:
    # Four equal candidates, p = 0.5: exactly two reach it.
    scaled = scale(classes_from_counts([1, 1, 1, 1]), 1.0, top_p=0.5)
    assert sum(c.size for c in scaled) == 2


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "bad",
    [
        -0.1,
        -1,
        float("nan"),
        float("inf"),
        float("-inf"),
        MAX_TEMPERATURE + 1e-9,
        6,
        100.0,
        True,
        False,
        "1",
        "0.5",
        None,
        [1.0],
    ],
)
def test_invalid_temperatures_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidOption):
        validate_temperature(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", [0, 0.0, 0.1, 1, 1.0, 2.5, MAX_TEMPERATURE])
def test_valid_temperatures_are_accepted_as_floats(good: float) -> None:
    got = validate_temperature(good)
    assert got == good and isinstance(got, float)


def test_invalid_option_is_a_value_error_with_a_readable_message() -> None:
    with pytest.raises(InvalidOption, match="between 0 and 5"):
        validate_temperature(7)
    assert issubclass(InvalidOption, ValueError)


@pytest.mark.parametrize("bad", [-1, MAX_TOP_K + 1, 1.5, "3", True])
def test_invalid_top_k(bad: object) -> None:
    with pytest.raises(InvalidOption, match="top_k"):
        validate_top_k(bad)  # type: ignore[arg-type]


def test_top_k_false_is_rejected_like_true() -> None:
    with pytest.raises(InvalidOption):
        validate_top_k(False)


def test_top_k_off_and_valid_values() -> None:
    assert validate_top_k(None) is None
    assert validate_top_k(0) is None
    assert validate_top_k(1) == 1
    assert validate_top_k(MAX_TOP_K) == MAX_TOP_K


@pytest.mark.parametrize(
    "bad", [0, 0.0, -0.5, 1.0000001, 2, float("nan"), float("inf"), True, "0.9"]
)
def test_invalid_top_p(bad: object) -> None:
    with pytest.raises(InvalidOption, match="top_p"):
        validate_top_p(bad)  # type: ignore[arg-type]


def test_top_p_one_means_off() -> None:
    assert validate_top_p(None) is None
    assert validate_top_p(1.0) is None
    assert validate_top_p(0.9) == 0.9


@pytest.mark.parametrize("bad", [0, -3, 101, 1.0, True, "10"])
def test_invalid_length(bad: object) -> None:
    with pytest.raises(InvalidOption, match="Length"):
        validate_length(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- draw


def chi_square_critical(df: int, alpha: float) -> float:
    """Upper-alpha critical value of χ² with ``df`` = 3, by bisection on its closed-form CDF
    F(x) = erf(√(x/2)) − √(2x/π)·e^(−x/2)."""
    assert df == 3

    def cdf(x: float) -> float:
        return math.erf(math.sqrt(x / 2)) - math.sqrt(2 * x / math.pi) * math.exp(-x / 2)

    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if cdf(mid) < 1 - alpha:
            lo = mid
        else:
            hi = mid
    return lo


def test_chi_square_critical_value_matches_tables() -> None:
    # Published tables: χ²(3) at α = 0.05 is 7.815, at α = 0.001 is 16.266.
    assert chi_square_critical(3, 0.05) == pytest.approx(7.815, abs=1e-3)
    assert chi_square_critical(3, 0.001) == pytest.approx(16.266, abs=1e-3)


def test_draw_frequencies_match_the_softmax() -> None:
    counts = [5, 3, 3, 1]  # classes (5×1), (3×2), (1×1): four candidates
    t = 0.5
    # By hand: q ∝ 5², 3², 3², 1² = 25 : 9 : 9 : 1, over 44.
    expected = [25 / 44, 9 / 44, 9 / 44, 1 / 44]
    assert reference_softmax(counts, t) == pytest.approx(expected, rel=1e-12)

    classes = classes_from_counts(counts)
    scaled = scale(classes, t)
    rng = random.Random(20240601)
    n = 200_000
    seen: Counter[int] = Counter()
    for _ in range(n):
        d = draw(scaled, classes, rng)
        seen[d.rank] += 1
        assert d.prob == scaled[d.class_index].prob
    assert set(seen) == {1, 2, 3, 4}
    chi2 = sum(
        (seen[r] - n * p) ** 2 / (n * p) for r, p in zip((1, 2, 3, 4), expected, strict=True)
    )
    # Pearson χ² with 4 categories → 3 degrees of freedom, significance α = 0.001.
    assert chi2 < chi_square_critical(3, 0.001), (chi2, seen)


def test_draw_is_deterministic_for_a_seed() -> None:
    classes = classes_from_counts([4, 4, 2, 1, 1, 1])
    scaled = scale(classes, 1.3, top_k=5)

    def run(seed: int) -> list[tuple[int, int, int]]:
        rng = random.Random(seed)
        return [
            (d.class_index, d.offset, d.rank)
            for d in (draw(scaled, classes, rng) for _ in range(200))
        ]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_draw_consumes_exactly_one_random_number() -> None:
    classes = classes_from_counts([3, 2, 2, 1])
    scaled = scale(classes, 0.8)
    a, b = random.Random(99), random.Random(99)
    for _ in range(50):
        draw(scaled, classes, a)
        b.random()
    assert a.getstate() == b.getstate()


def test_rank_is_one_based_among_all_candidates() -> None:
    # Candidates in rank order: [5], [3, 3, 3], [2, 2], [1]  → ranks 1..7.
    counts = [5, 3, 3, 3, 2, 2, 1]
    classes = classes_from_counts(counts)
    scaled = scale(classes, 1.0)
    q = [c / sum(counts) for c in counts]
    cumulative = 0.0
    for rank, prob in enumerate(q, start=1):
        u = cumulative + prob / 2  # the middle of this candidate's interval
        d = draw(scaled, classes, ScriptedRandom([u]))
        assert d.rank == rank
        assert d.prob == pytest.approx(prob, rel=1e-12)
        # class_index/offset point at the same candidate.
        before = sum(c.size for c in classes[: d.class_index])
        assert before + d.offset + 1 == rank
        cumulative += prob


def test_rank_counts_candidates_removed_by_cut_offs_in_earlier_classes_only() -> None:
    # top-k 3 keeps [5], [3, 3] (the third 3 is cut). The highest possible rank is 3.
    classes = classes_from_counts([5, 3, 3, 3, 1])
    scaled = scale(classes, 1.0, top_k=3)
    assert sum(c.size for c in scaled) == 3
    ranks = {draw(scaled, classes, ScriptedRandom([u])).rank for u in (0.0, 0.3, 0.6, 0.7, 0.99999)}
    assert ranks <= {1, 2, 3}
    assert draw(scaled, classes, ScriptedRandom([0.99999])).rank == 3


def test_draw_from_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        draw((), (), random.Random(0))
