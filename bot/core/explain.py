"""The numbers behind a choice: explanation tables, entropy and generation traces.

Everything here is computed from the same :func:`bot.core.sampling.scale` the sampler uses, so
the table a class reads is, to the last digit, the distribution the bot drew from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.model import END_LABEL
from bot.core.sampling import (
    NO_KNOBS,
    CountClass,
    Knobs,
    ScaledClass,
    Special,
    Stage,
    entropy_bits,
    pipeline,
    scale,
    without,
)

__all__ = ["Explanation", "Generation", "Row", "Step", "explain", "sequence_scores"]


@dataclass(frozen=True, slots=True)
class Row:
    """One candidate next token with every intermediate number of the computation."""

    token: str
    count: int
    p: float  # count / total: the learned probability
    logit: float  # ln p
    scaled_logit: float | None  # adjusted ln p / T; None at T = 0, where it is undefined
    prob: float  # after the whole pipeline (what sampling uses)
    masked: bool = False  # <end> masked by min_words: logit −∞, probability 0
    adjusted_logit: float | None = None  # ln p after penalties, bias, ban (None: unchanged)
    removed_by: str | None = None  # the stage that removed it (None: kept)


@dataclass(frozen=True, slots=True)
class Explanation:
    asked: tuple[str, ...]  # the words the user gave
    context: tuple[str, ...]  # the context actually used (shorter if it backed off)
    temperature: float
    top_k: int | None
    top_p: float | None
    total: int  # Σ count over every candidate
    candidates: int
    rows: tuple[Row, ...]  # the most likely candidates after the knobs, in rank order
    others: int  # candidates not listed in rows
    others_p: float  # their share of the learned probability
    others_prob: float  # their share after the pipeline
    entropy_t1: float  # bits, learned distribution (T = 1, no cut-offs)
    entropy_t: float  # bits, at T with the knobs and cut-offs
    backed_off: bool  # the full context was never seen, a shorter one was used
    # The whole distribution, so a chart can recompute it at other temperatures without
    # going back to the model (rows alone miss the long tail that temperature redistributes).
    classes: tuple[CountClass, ...] = ()
    end_masked: bool = False  # <end> removed and the others renormalised (min_words)
    unknown: tuple[str, ...] = ()  # typed words never learned, backed off over
    knobs: Knobs = NO_KNOBS
    stages: tuple[Stage, ...] = ()  # kept candidates and mass after each stage

    @property
    def perplexity_t1(self) -> float:
        """Effective number of choices of the learned distribution."""
        return math.pow(2.0, self.entropy_t1)

    @property
    def perplexity_t(self) -> float:
        return math.pow(2.0, self.entropy_t)


def explain(
    asked: Sequence[str],
    context: Sequence[str],
    classes: Sequence[CountClass],
    top: Sequence[tuple[str, int]],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    *,
    backed_off: bool = False,
    end_masked: int = 0,
    knobs: Knobs = NO_KNOBS,
    adjusted: Mapping[str, tuple[float, str | None]] | None = None,
    rows: int | None = None,
) -> Explanation:
    """Build the table for ``top`` — the candidates in count order, at least every one a
    knob changed and the ``rows`` likeliest others (all of them for a full listing) — and
    summarise the rest from the count classes alone.

    ``end_masked`` is the count of <end> when min_words masks it: its row keeps its
    learned p and logit but gets probability 0, and the others are renormalised.
    ``adjusted`` maps a word a knob changed to its new logit and, when −∞, why."""
    total = sum(c.count * c.size for c in classes)
    changed = dict(adjusted or {})
    if end_masked:
        changed[END_LABEL] = (-math.inf, "masked")
    counts = dict(top)
    names = [w for w in changed if w in counts]
    specials = [Special(i, counts[w], changed[w][0], changed[w][1]) for i, w in enumerate(names)]
    pipe = pipeline(
        without(classes, *(s.count for s in specials)),
        temperature,
        top_k,
        top_p,
        knobs.min_p,
        specials,
    )
    index_of_class = {r.count: i for i, r in enumerate(pipe.ranked) if r.token is None}
    index_of_word = {names[r.token]: i for i, r in enumerate(pipe.ranked) if r.token is not None}
    built: list[tuple[int, int, Row]] = []
    seen_in_class: dict[int, int] = {}
    for token, count in top:
        p = count / total
        logit = math.log(p)
        if token in index_of_word:
            index, position = index_of_word[token], 0
            adj: float | None = pipe.ranked[index].logit
        else:
            position = seen_in_class.get(count, 0)
            seen_in_class[count] = position + 1
            index, adj = index_of_class.get(count, len(pipe.ranked)), None
        value = logit if adj is None else adj
        scaled_logit = value / temperature if temperature else None
        if index < len(pipe.ranked):
            removed = pipe.removed_by(index, position)
            prob = pipe.final_prob(index, position)
        else:  # not in the distribution at all (cannot happen with consistent reads)
            removed, prob = "top_k", 0.0
        row = Row(
            token,
            count,
            p,
            logit,
            scaled_logit,
            prob,
            masked=removed == "masked",
            adjusted_logit=adj,
            removed_by=removed,
        )
        built.append((index, position, row))
    built.sort(key=lambda b: (b[0], b[1]))  # rank order after the knobs
    ranked_rows = [r for _, _, r in built]
    # Every word a knob changed stays listed (a banned one ranks last), so the table
    # shows what each knob did.
    listed = tuple(ranked_rows[:rows]) + tuple(
        r for r in ranked_rows[rows:] if rows is not None and r.token in changed
    )
    listed_p = math.fsum(r.p for r in listed)
    listed_prob = math.fsum(r.prob for r in listed)
    candidates = sum(c.size for c in classes)
    return Explanation(
        asked=tuple(asked),
        context=tuple(context),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        total=total,
        candidates=candidates,
        rows=listed,
        others=candidates - len(listed),
        others_p=max(0.0, 1.0 - listed_p),
        others_prob=max(0.0, 1.0 - listed_prob),
        entropy_t1=entropy_bits(scale(classes, 1.0)),
        entropy_t=entropy_bits([ScaledClass(g.count, g.size, g.prob) for g in pipe.groups]),
        backed_off=backed_off,
        classes=tuple(classes),
        end_masked=bool(end_masked),
        knobs=knobs,
        stages=pipe.stages,
    )


@dataclass(frozen=True, slots=True)
class Step:
    """One generated token and how it was chosen."""

    context: tuple[str, ...]  # the context used, after back-off
    backed_off: bool
    token: str
    prob: float  # under the sampling distribution (T and cut-offs applied)
    rank: int
    candidates: int  # those it was drawn from (without <end> when masked)
    end_masked: bool = False
    learned_prob: float = 1.0  # under the learned model: T = 1, no cut-offs (<end> as masked)
    changed: bool = False  # a penalty, bias or ban changed the word this draw gave


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    tokens: tuple[str, ...]  # the generated words (the start words included, no markers)
    steps: tuple[Step, ...]
    seed: int
    temperature: float
    top_k: int | None
    top_p: float | None
    order: int
    attempts: int  # tries needed to pass the originality check
    copied_run: int  # longest run found verbatim in one learned message (0 unless a copy)
    ended: bool  # True if it stopped at the end marker, False at the length limit
    min_words: int = 0
    copied_whole: bool = False  # every attempt copied, and this one is a whole message
    unknown: tuple[str, ...] = ()  # typed start words never learned, backed off over
    start: tuple[str, ...] = ()  # the start words used (the known suffix of those typed)
    knobs: Knobs = NO_KNOBS

    # Two measures of one text. Under the learned model (T = 1) it says how surprising the
    # text is next to what was learned, so it rises with T: the number a lesson compares.
    # Under the sampling distribution it says how surprising the text was to the sampler
    # itself, which a low T makes confident whatever it says.
    @property
    def log_prob_learned(self) -> float:
        return sequence_scores([s.learned_prob for s in self.steps])[0]

    @property
    def perplexity_learned(self) -> float:
        return sequence_scores([s.learned_prob for s in self.steps])[1]

    @property
    def log_prob_sampled(self) -> float:
        return sequence_scores([s.prob for s in self.steps])[0]

    @property
    def perplexity_sampled(self) -> float:
        return sequence_scores([s.prob for s in self.steps])[1]


def sequence_scores(probs: Sequence[float]) -> tuple[float, float]:
    """Natural log-probability of a sequence of step probabilities and its per-token
    perplexity exp(−Σ ln q / n)."""
    log_prob = math.fsum(math.log(q) for q in probs if q > 0)
    return log_prob, (math.exp(-log_prob / len(probs)) if probs else 1.0)
