"""Plain-text and JSON views of explanations and generations.

Shared by the terminal and by Discord (which shows the same table inside a code block), so
a student comparing the two sees identical numbers. Pure functions: no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from bot.core.explain import Explanation, Generation
from bot.core.model import END_LABEL, START_LABEL
from bot.core.wording import context_phrase, plural

__all__ = [
    "candidate_lines",
    "explanation_json",
    "explanation_table",
    "generation_json",
    "probability_bar",
    "sampling_label",
    "shorten",
    "temperature_label",
    "trace_lines",
    "trace_summary",
]


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def temperature_label(t: float) -> str:
    return "0 (greedy)" if t == 0 else f"{t:g}"


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if math.isinf(x):
        return "-∞" if x < 0 else "∞"
    return f"{x:.{digits}f}"


def explanation_table(e: Explanation, token_width: int = 14) -> str:
    """A fixed-width table: rank, token, count, p, ln p, ln p / T, softmax."""
    t = temperature_label(e.temperature)
    header = (
        f"{'#':>3} {'next':<{token_width}} {'count':>6} {'p':>6} {'ln p':>7} {'÷T':>7} {'P(T)':>6}"
    )
    lines = [header, "─" * len(header)]
    for i, r in enumerate(e.rows, start=1):
        lines.append(
            f"{i:>3} {shorten(r.token, token_width):<{token_width}} {r.count:>6} "
            f"{_num(r.p)[1:] if r.p < 1 else _num(r.p):>6} {_num(r.logit, 2):>7} "
            f"{_num(r.scaled_logit, 2):>7} {'masked' if r.masked else f'{r.prob:.1%}':>6}"
        )
    if e.others:
        lines.append(
            f"    … {plural(e.others, 'other')}: "
            f"{e.others_p:.1%} learned, {e.others_prob:.1%} at T = {t}"
        )
    return "\n".join(lines)


def explanation_summary(e: Explanation) -> str:
    t = temperature_label(e.temperature)
    context = context_phrase(e.context)
    backed = " (backed off: the full context was never seen)" if e.backed_off else ""
    cut = []
    if e.top_k:
        cut.append(f"top-k {e.top_k}")
    if e.top_p:
        cut.append(f"top-p {e.top_p:g}")
    cuts = f", {', '.join(cut)}" if cut else ""
    masked = (
        f"\n{END_LABEL} is masked (min_words): the other probabilities are renormalised."
        if e.end_masked
        else ""
    )
    return (
        f"Context {context}{backed}: {plural(e.candidates, 'candidate')} seen "
        f"{plural(e.total, 'time')}.\n"
        f"Entropy {e.entropy_t1:.2f} bits ≈ {e.perplexity_t1:.1f} effective choices at T = 1; "
        f"{e.entropy_t:.2f} bits ≈ {e.perplexity_t:.1f} at T = {t}{cuts}.{masked}"
    )


def explanation_json(e: Explanation) -> dict[str, Any]:
    """Stable shape documented in the README (``explain --json``)."""
    return {
        "asked": list(e.asked),
        "unknown": list(e.unknown),
        "context": list(e.context),
        "backed_off": e.backed_off,
        "temperature": e.temperature,
        "top_k": e.top_k,
        "top_p": e.top_p,
        "total": e.total,
        "candidates": [
            {
                "token": r.token,
                "is_end": r.token == END_LABEL,
                "count": r.count,
                "p": r.p,
                "logit": r.logit,
                "scaled_logit": r.scaled_logit,
                "probability": r.prob,
                "masked": r.masked,
            }
            for r in e.rows
        ],
        "candidate_count": e.candidates,
        "others": {"count": e.others, "p": e.others_p, "probability": e.others_prob},
        "end_masked": e.end_masked,
        "entropy_bits": {"t1": e.entropy_t1, "t": e.entropy_t},
        "perplexity": {"t1": e.perplexity_t1, "t": e.perplexity_t},
    }


def generation_json(g: Generation) -> dict[str, Any]:
    return {
        "text": g.text,
        "tokens": list(g.tokens),
        "temperature": g.temperature,
        "seed": g.seed,
        "top_k": g.top_k,
        "top_p": g.top_p,
        "order": g.order,
        "ended": g.ended,
        "min_words": g.min_words,
        "attempts": g.attempts,
        "copied_run": g.copied_run,
        "copied_whole": g.copied_whole,
        "unknown": list(g.unknown),
        # Under the learned model (T = 1, no cut-offs): rises with T.
        "log_prob_learned": g.log_prob_learned,
        "perplexity_learned": g.perplexity_learned,
        # Under the distribution each word was drawn from (T and cut-offs applied).
        "log_prob_sampled": g.log_prob_sampled,
        "perplexity_sampled": g.perplexity_sampled,
        "steps": [
            {
                "context": list(s.context),
                "backed_off": s.backed_off,
                "token": s.token,
                "probability": s.prob,
                "probability_learned": s.learned_prob,
                "rank": s.rank,
                "candidates": s.candidates,
                "end_masked": s.end_masked,
            }
            for s in g.steps
        ],
    }


def trace_lines(g: Generation, token_width: int = 16) -> list[str]:
    """One line per step: the word, its probability and its rank among the candidates."""
    lines = []
    for s in g.steps:
        mark = "*" if s.backed_off else " "
        if s.context == (START_LABEL,):
            where = context_phrase(s.context)
        else:
            where = (
                f"after {context_phrase(s.context, 30)}" if s.context else "from word frequencies"
            )
        masked = f" ({END_LABEL} masked)" if s.end_masked else ""
        lines.append(
            f"{shorten(s.token, token_width):<{token_width}} {s.prob:>6.1%}  "
            f"rank {s.rank:>4}/{s.candidates:<5}{mark} {where}{masked}"
        )
    return lines + trace_summary(g)


def sampling_label(g: Generation) -> str:
    """The distribution the words were drawn from: "T = 0.5, top-k 5"."""
    cuts = "".join(
        [f", top-k {g.top_k}" if g.top_k else "", f", top-p {g.top_p:g}" if g.top_p else ""]
    )
    return f"T = {temperature_label(g.temperature)}{cuts}"


def trace_summary(g: Generation) -> list[str]:
    """The trace's totals, each perplexity named by the distribution it is measured under."""
    return [
        f"learned model, T = 1: perplexity {g.perplexity_learned:.2f}",
        f"as sampled, {sampling_label(g)}: perplexity {g.perplexity_sampled:.2f}",
    ]


def probability_bar(prob: float, width: int = 10) -> str:
    filled = round(prob * width)
    return "█" * filled + "·" * (width - filled)


def candidate_lines(e: Explanation, token_width: int = 18) -> list[str]:
    """The stepper's view of the next word: a bar, the probability and the word per row."""
    lines = [
        f"{probability_bar(r.prob)} {r.prob:6.1%}  {shorten(r.token, token_width)}" for r in e.rows
    ]
    if e.others:
        lines.append(f"{'':10} {e.others_prob:6.1%}  … {plural(e.others, 'other')}")
    return lines
