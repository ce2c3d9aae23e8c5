"""Plain-text and JSON views of explanations and generations.

Shared by the terminal and by Discord (which shows the same table inside a code block), so
a student comparing the two sees identical numbers. Pure functions: no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from bot.core.explain import Explanation, Generation, Row, Step
from bot.core.model import END_LABEL, START_LABEL
from bot.core.sampling import Knobs
from bot.core.wording import CHANGED_BY_KNOBS, context_phrase, plural

__all__ = [
    "candidate_lines",
    "compare_label",
    "explanation_json",
    "explanation_table",
    "generation_json",
    "knobs_json",
    "probability_bar",
    "sampling_label",
    "shorten",
    "stage_line",
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


#: A phone's code block in portrait holds this many characters a line.
PHONE_WIDTH = 40
#: How the table names the stage that removed a candidate.
CUT_LABELS = {
    "ban": "ban",
    "masked": "mask",
    "greedy": "T=0",
    "top_k": "top-k",
    "top_p": "top-p",
    "min_p": "min-p",
}


def _p(x: float) -> str:
    return _num(x)[1:] if x < 1 else _num(x)


def _prob(r: Row) -> str:
    return "masked" if r.masked else f"{r.prob:.1%}"


def _others(e: Explanation, learned: bool, sampled: bool) -> str:
    t = temperature_label(e.temperature)
    parts = []
    if learned:
        parts.append(f"{e.others_p:.1%} learned")
    if sampled:
        parts.append(f"{e.others_prob:.1%} at T = {t}")
    return f"… {plural(e.others, 'other')}: " + ", ".join(parts)


def explanation_table(e: Explanation, token_width: int = 14, wide: bool = True) -> str:
    """The candidates with every number of the pipeline.

    ``wide``: one line per candidate (rank, token, count, p, ln p, the adjusted logit when
    a knob changed one, ÷T, P and the stage that cut it). Otherwise two blocks that fit a
    phone (:data:`PHONE_WIDTH`): what was learned, then what the pipeline made of it."""
    if not wide:
        return _compact_table(e)
    knobbed = any(r.adjusted_logit is not None for r in e.rows)
    adj = f" {'adj':>7}" if knobbed else ""
    header = (
        f"{'#':>3} {'next':<{token_width}} {'count':>6} {'p':>6} {'ln p':>7}{adj} {'÷T':>7} "
        f"{'P(T)':>6} cut"
    )
    lines = [header, "─" * len(header)]
    for i, r in enumerate(e.rows, start=1):
        adjusted = f" {_num(r.adjusted_logit, 2) if r.adjusted_logit is not None else '':>7}"
        lines.append(
            f"{i:>3} {shorten(r.token, token_width):<{token_width}} {r.count:>6} "
            f"{_p(r.p):>6} {_num(r.logit, 2):>7}{adjusted if knobbed else ''} "
            f"{_num(r.scaled_logit, 2):>7} {_prob(r):>6} {CUT_LABELS.get(r.removed_by or '', '')}"
        )
    if e.others:
        lines.append("    " + _others(e, True, True))
    return "\n".join(line.rstrip() for line in lines)


def _compact_table(e: Explanation) -> str:
    """Two phone-wide blocks sharing the rank column: the learned numbers, then the
    adjusted logit (blank where no knob changed it), ÷T, P(T) and the stage that cut it."""
    learned = f"{'#':>2} {'next':<14} {'count':>6} {'p':>6} {'ln p':>7}"
    sampled = f"{'#':>2} {'next':<9} {'adj':>6} {'÷T':>7} {'P(T)':>6} {'cut':<5}"
    lines = [learned, "─" * len(learned)]
    for i, r in enumerate(e.rows, start=1):
        lines.append(
            f"{i:>2} {shorten(r.token, 14):<14} {r.count:>6} {_p(r.p):>6} {_num(r.logit, 2):>7}"
        )
    if e.others:
        lines.append(_others(e, True, False))
    lines += ["", sampled.rstrip(), "─" * len(sampled)]
    for i, r in enumerate(e.rows, start=1):
        adjusted = _num(r.adjusted_logit, 2) if r.adjusted_logit is not None else ""
        scaled = _num(r.scaled_logit, 1 if abs(r.scaled_logit or 0) >= 100 else 2)
        lines.append(
            f"{i:>2} {shorten(r.token, 9):<9} {adjusted:>6} {scaled:>7} {_prob(r):>6} "
            f"{CUT_LABELS.get(r.removed_by or '', '')}".rstrip()
        )
    if e.others:
        lines.append(_others(e, False, True))
    return "\n".join(shorten(line, PHONE_WIDTH) for line in lines)


def stage_line(e: Explanation) -> str:
    """Kept candidates and mass after each stage: "adjust 5 → top-k 2 (83.3%) → …"."""
    parts = [
        f"{CUT_LABELS.get(s.stage, s.stage)} {s.kept} ({s.mass:.1%})"
        for s in e.stages
        if s.stage != "adjust"
    ]
    first = e.stages[0].kept if e.stages else e.candidates
    return " → ".join([f"{first} kept", *parts]) if parts else f"{first} kept"


def explanation_summary(e: Explanation) -> str:
    t = temperature_label(e.temperature)
    context = context_phrase(e.context)
    backed = " (backed off: the full context was never seen)" if e.backed_off else ""
    cut = []
    if e.top_k:
        cut.append(f"top-k {e.top_k}")
    if e.top_p:
        cut.append(f"top-p {e.top_p:g}")
    cut += e.knobs.labels()
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
        + (f"\nStages: {stage_line(e)}." if len(e.stages) > 1 or e.knobs.adjusts else "")
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
                "adjusted_logit": _json_logit(r),
                "removed_by": r.removed_by,
            }
            for r in e.rows
        ],
        "stages": [{"stage": s.stage, "kept": s.kept, "mass": s.mass} for s in e.stages],
        "knobs": knobs_json(e.knobs),
        "candidate_count": e.candidates,
        "others": {"count": e.others, "p": e.others_p, "probability": e.others_prob},
        "end_masked": e.end_masked,
        "entropy_bits": {"t1": e.entropy_t1, "t": e.entropy_t},
        "perplexity": {"t1": e.perplexity_t1, "t": e.perplexity_t},
    }


def _json_logit(r: Row) -> float | None:
    """The logit after the knobs (ln p when none changed it); null for −∞ (banned or
    masked), which JSON cannot write."""
    value = r.logit if r.adjusted_logit is None else r.adjusted_logit
    return None if math.isinf(value) else value


def knobs_json(k: Knobs) -> dict[str, Any]:
    return {
        "min_p": k.min_p,
        "repetition_penalty": k.repetition_penalty,
        "presence_penalty": k.presence_penalty,
        "frequency_penalty": k.frequency_penalty,
        "ban": list(k.ban),
        "bias": dict(k.bias),
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
        "knobs": knobs_json(g.knobs),
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
                "changed_by_knobs": s.changed,
            }
            for s in g.steps
        ],
    }


def trace_lines(g: Generation, token_width: int = 16, wide: bool = True) -> list[str]:
    """One line per step: the word, its probability and its rank among the candidates,
    then a legend of the marks used and the scores.

    Marks: ``*`` backed off, ``!`` a penalty, bias or ban changed the word this draw gave,
    ``~`` <end> was masked. ``wide=False`` fits a phone (:data:`PHONE_WIDTH`): a header
    line first, the context after ``←``."""
    lines = [] if wide else [f"{'word':<10} {'P(T)':>6} {'rank':>9}    context"]
    for s in g.steps:
        if wide:
            mark = ("*" if s.backed_off else " ") + ("!" if s.changed else "")
            if s.context == (START_LABEL,):
                where = context_phrase(s.context)
            elif s.context:
                where = f"after {context_phrase(s.context, 30)}"
            else:
                where = "from word frequencies"
            masked = f" ({END_LABEL} masked)" if s.end_masked else ""
            lines.append(
                f"{shorten(s.token, token_width):<{token_width}} {s.prob:>6.1%}  "
                f"rank {s.rank:>4}/{s.candidates:<5}{mark} {where}{masked}"
            )
        else:
            mark = "".join(m for m, on in _marks(s) if on)
            if s.context == (START_LABEL,):
                where = "← (start)"
            else:
                where = f"← {' '.join(s.context)}" if s.context else "← word freq."
            rank = f"{s.rank}/{s.candidates}"
            line = f"{shorten(s.token, 10):<10} {s.prob:>6.1%} {rank:>9}{mark:<3} {where}"
            lines.append(shorten(line, PHONE_WIDTH))
    if any(s.changed for s in g.steps):
        lines.append(f"! {CHANGED_BY_KNOBS}")
    if any(s.backed_off for s in g.steps):
        lines.append("* backed off to a shorter context")
    if not wide and any(s.end_masked for s in g.steps):
        lines.append(f"~ {END_LABEL} masked (min_words)")
    return lines + trace_summary(g, wide)


def sampling_label(g: Generation) -> str:
    """The distribution the words were drawn from: "T = 0.5, top-k 5"."""
    cuts = "".join(
        [f", top-k {g.top_k}" if g.top_k else "", f", top-p {g.top_p:g}" if g.top_p else ""]
    )
    return f"T = {temperature_label(g.temperature)}{cuts}"


def trace_summary(g: Generation, wide: bool = True) -> list[str]:
    """The trace's totals, each perplexity named by the distribution it is measured under
    (on a phone the sampling distribution gets a line of its own)."""
    learned = f"learned model, T = 1: perplexity {g.perplexity_learned:.2f}"
    if wide:
        return [learned, f"as sampled, {sampling_label(g)}: perplexity {g.perplexity_sampled:.2f}"]
    return [
        shorten(learned, PHONE_WIDTH),
        f"as sampled: perplexity {g.perplexity_sampled:.2f}",
        shorten(f"  (sampled at {sampling_label(g)})", PHONE_WIDTH),
    ]


def _marks(s: Step) -> list[tuple[str, bool]]:
    return [("*", s.backed_off), ("!", s.changed), ("~", s.end_masked)]


def compare_label(g: Generation, vary: str) -> str:
    """ "T = 0.5", or "repetition_penalty = 1.3 · T = 0.1" when another knob varies."""
    t = f"T = {temperature_label(g.temperature)}"
    if vary == "temperature":
        return t
    value = getattr(g, vary) if vary in ("top_k", "top_p") else getattr(g.knobs, vary)
    return f"{vary} = {'off' if value is None else f'{value:g}'} · {t}"


def probability_bar(prob: float, width: int = 10) -> str:
    filled = round(prob * width)
    return "█" * filled + "·" * (width - filled)


def candidate_lines(e: Explanation, token_width: int = 18) -> list[str]:
    """The stepper's view of the next word: a bar, the probability and the word per row,
    and the knob that removed it (ban, mask, min-p) as the explanation table names it; T = 0
    is left unnamed, the title says it."""
    lines = []
    for r in e.rows:
        cut = None if r.removed_by == "greedy" else CUT_LABELS.get(r.removed_by or "")
        line = f"{probability_bar(r.prob)} {r.prob:6.1%}  {shorten(r.token, token_width)}"
        lines.append(f"{line} ({cut})" if cut else line)
    if e.others:
        lines.append(f"{'':10} {e.others_prob:6.1%}  … {plural(e.others, 'other')}")
    return lines
