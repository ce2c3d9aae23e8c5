"""Rebuild the lesson's charts and print the worked example's numbers.

    python docs/make_images.py

The images in docs/images/ and the table in docs/teaching.md come from the bot's own
code (the same explain_context and explanation_chart as /markov-explain), so what the
class sees on the slide is what the bot shows in Discord. The script also checks every
number against the textbook formula before writing anything, so a change to the sampler
that broke the lesson would stop it here rather than in front of a class.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.core.charts import explanation_chart
from bot.core.explain import Explanation, Generation
from bot.core.generate import COMPARE_LENGTH, Options, compare, explain_context, generate
from bot.core.model import BOS, EOS, TEACHING_ORDER, MemoryModel
from bot.core.sampling import Knobs
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA, Corpus

IMAGES = Path(__file__).resolve().parent / "images"
CHARTS = (
    # (corpus, context, temperature, file name)
    ("tiny-lesson", "the", 0.5, "explain_tiny_T0.5.png"),
    ("tiny-lesson", "the", 2.0, "explain_tiny_T2.png"),
    ("burns", "When", 0.5, "explain_burns_When_T0.5.png"),
)


def learn(corpus: Corpus) -> MemoryModel:
    """The model the bot builds for a bundled corpus: one-word contexts, one line a message."""
    model = MemoryModel(order=TEACHING_ORDER)
    with corpus.path.open(encoding="utf-8") as f:
        for line in f:
            model.learn(tokenize(line))
    return model


def by_hand(counts: list[int], t: float) -> list[float]:
    """q_i = exp(ln p_i / T − max) / Σ_j exp(ln p_j / T − max), written out literally."""
    total = sum(counts)
    scaled = [math.log(c / total) / t for c in counts]
    top = max(scaled)
    weights = [math.exp(s - top) for s in scaled]
    return [w / sum(weights) for w in weights]


def check(e: Explanation) -> None:
    counts = [r.count for r in e.rows]
    expected = by_hand(counts, e.temperature)
    for row, q in zip(e.rows, expected, strict=True):
        if not math.isclose(row.prob, q, rel_tol=1e-12):
            raise SystemExit(f"{row.token}: the bot says {row.prob!r}, the formula {q!r}")
    h = -sum(q * math.log2(q) for q in expected)
    if not math.isclose(e.entropy_t, h, rel_tol=1e-12):
        raise SystemExit(f"entropy: the bot says {e.entropy_t!r}, the formula {h!r}")


def table(at_1: Explanation, at_half: Explanation, at_2: Explanation) -> str:
    lines = [
        "| next word | count c | p = c/Σc | ln p | ln p ÷ 0.5 | q at T = 0.5 "
        "| ln p ÷ 2 | q at T = 2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r1, rh, r2 in zip(at_1.rows, at_half.rows, at_2.rows, strict=True):
        assert rh.scaled_logit is not None and r2.scaled_logit is not None
        lines.append(
            f"| {r1.token} | {r1.count} | {r1.p:.4f} | {r1.logit:.4f} | {rh.scaled_logit:.4f} "
            f"| {rh.prob:.4f} | {r2.scaled_logit:.4f} | {r2.prob:.4f} |"
        )
    lines.append(
        f"| **total** | {at_1.total} | 1 | | | 1 | | 1 |\n\n"
        f"Entropy: {at_1.entropy_t:.4f} bits at T = 1 (≈ {at_1.perplexity_t:.4f} effective "
        f"choices), {at_half.entropy_t:.4f} bits at T = 0.5 (≈ {at_half.perplexity_t:.4f}), "
        f"{at_2.entropy_t:.4f} bits at T = 2 (≈ {at_2.perplexity_t:.4f})."
    )
    return "\n".join(lines)


async def learned_probabilities(model: MemoryModel, g: Generation) -> list[float]:
    """Each step's p = c / Σc from the counts of the context it used, as a student would
    read them off the table: the learned model's probability of the word generated (<end>
    left out of Σc while min_words masks it; an empty context is the word frequencies)."""
    markers = {"<start>": BOS, "<end>": EOS}

    async def ids(words: Sequence[str]) -> list[int]:
        return [markers.get(w) or (await model.resolve([w]))[0] for w in words]

    probs = []
    for step in g.steps:
        found = await model.lookup(await ids(step.context)) if step.context else None
        found = found or await model.unigram()
        assert found is not None
        [token] = await ids([step.token])
        ended = await model.count_of(found, EOS) if step.end_masked else 0
        probs.append(await model.count_of(found, token) / (found.total - ended))
    return probs


def perplexity(probs: list[float]) -> float:
    """exp(−Σ ln p / n), written out literally."""
    return math.exp(-sum(math.log(p) for p in probs) / len(probs))


async def perplexities(tiny: MemoryModel, burns: MemoryModel) -> str:
    """Section 5's numbers: the greedy tiny-lesson sentence worked by hand, and the README's
    compare on Burns, each checked against the bot and required to rise with T."""
    greedy = await generate(tiny, "the", Options(temperature=0.0))
    probs = await learned_probabilities(tiny, greedy)
    by_hand = perplexity(probs)
    if not math.isclose(greedy.perplexity_learned, by_hand, rel_tol=1e-12):
        raise SystemExit(
            f"perplexity: the bot says {greedy.perplexity_learned!r}, by hand {by_hand!r}"
        )
    lines = [
        f"Greedy from “the”: {greedy.text!r}, learned p of each step "
        f"{', '.join(f'{p:.4f}' for p in probs)}, perplexity {by_hand:.4f} under the learned "
        f"model ({greedy.perplexity_sampled:.4f} under the greedy sampler).",
        "",
        "| T | perplexity under the learned model | as sampled | text |",
        "|---:|---:|---:|---|",
    ]
    temps = (0.1, 0.5, 1.0, 2.0)
    options = Options(seed=1, length=COMPARE_LENGTH, min_words=COMPARE_LENGTH)
    results = await compare(burns, "When", temps, options)
    for g in results:
        hand = perplexity(await learned_probabilities(burns, g))
        if not math.isclose(g.perplexity_learned, hand, rel_tol=1e-9):
            raise SystemExit(
                f"T = {g.temperature}: the bot says {g.perplexity_learned!r}, by hand {hand!r}"
            )
        lines.append(
            f"| {g.temperature:g} | {g.perplexity_learned:.2f} | {g.perplexity_sampled:.2f} "
            f"| {g.text} |"
        )
    shown = [g.perplexity_learned for g in results]
    if shown != sorted(shown):
        raise SystemExit(f"perplexity under the learned model does not rise with T: {shown}")
    when = await explain_context(burns, "When", 0.5)
    lines.append(
        f"\nAfter “When”: {when.candidates} next words, {when.perplexity_t1:.0f} effective "
        f"choices at T = 1, {when.perplexity_t:.0f} at T = 0.5."
    )
    return "\n".join(lines)


#: The lab's worked example: after "the", with "the cat sat on the" as the output so far
#: (cat used once). Each knob alone, then all together; (label, knobs, T, top-k).
LAB_HISTORY = "the cat sat on the"
LAB = (
    ("no knob", Knobs(), 1.0, None),
    ("repetition_penalty 2", Knobs(repetition_penalty=2.0), 1.0, None),
    ("presence 0.5 + frequency 0.5", Knobs(presence_penalty=0.5, frequency_penalty=0.5), 1.0, None),
    ("ban cat", Knobs(ban=("cat",)), 1.0, None),
    ("bias sun=+1", Knobs(bias=(("sun", 1.0),)), 1.0, None),
    ("min_p 0.3", Knobs(min_p=0.3), 1.0, None),
    (
        "all: R 3, ban mat, sun +1, T 0.5, top-k 2, min-p 0.5",
        Knobs(repetition_penalty=3.0, ban=("mat",), bias=(("sun", 1.0),), min_p=0.5),
        0.5,
        2,
    ),
)
LAB_WORDS = ("cat", "dog", "mat", "sun")


def lab_by_hand(knobs: Knobs, t: float, top_k: int | None) -> dict[str, float]:
    """The documented order written out literally for the four words after "the": adjust
    (cat used once), divide by T, softmax, top-k, min-p, renormalise."""
    counts = {"cat": 4, "dog": 2, "mat": 1, "sun": 1}
    used = {"cat": 1}
    bias = dict(knobs.bias)
    logits = {}
    for w, c in counts.items():
        x = math.log(c / 8)
        if used.get(w, 0):
            x = x * knobs.repetition_penalty
            x -= knobs.presence_penalty + used[w] * knobs.frequency_penalty
        x += bias.get(w, 0.0)
        logits[w] = -math.inf if w in knobs.ban else x
    live = {w: x / t for w, x in logits.items() if x != -math.inf}
    top = max(live.values())
    q = {w: math.exp(x - top) for w, x in live.items()}
    q = {w: v / sum(q.values()) for w, v in q.items()}
    kept = sorted(q, key=lambda w: -q[w])  # no ties in LAB once T and the knobs applied
    if top_k:
        kept = kept[:top_k]
    if knobs.min_p:
        kept = [w for w in kept if q[w] >= knobs.min_p * max(q.values())]
    mass = sum(q[w] for w in kept)
    return {w: (q[w] / mass if w in kept else 0.0) for w in counts}


LAB_CHART = "explain_tiny_lab.png"


async def lab_table(tiny: MemoryModel) -> str:
    lines = [
        "| knobs | " + " | ".join(f"P({w})" for w in LAB_WORDS) + " | removed |",
        "|---|" + "---:|" * len(LAB_WORDS) + "---|",
    ]
    for label, knobs, t, top_k in LAB:
        e = await explain_context(tiny, LAB_HISTORY, t, top_k=top_k, knobs=knobs)
        got = {r.token: r.prob for r in e.rows}
        want = lab_by_hand(knobs, t, top_k)
        for w in LAB_WORDS:
            if not math.isclose(got[w], want[w], rel_tol=1e-12, abs_tol=1e-15):
                raise SystemExit(f"{label}, {w}: the bot says {got[w]!r}, by hand {want[w]!r}")
        if label.startswith("all"):  # the chart of the lesson's last step
            (IMAGES / LAB_CHART).write_bytes(explanation_chart(e))
            sys.stdout.write(f"wrote {IMAGES / LAB_CHART}\n")
        removed = ", ".join(f"{r.token} ({r.removed_by})" for r in e.rows if r.removed_by)
        lines.append(
            f"| {label} | " + " | ".join(f"{got[w]:.4f}" for w in LAB_WORDS) + f" | {removed} |"
        )
    return "\n".join(lines)


async def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    models: dict[str, MemoryModel] = {}
    for corpus, context, t, name in CHARTS:
        if corpus not in models:
            models[corpus] = learn(CORPORA[corpus])
        e = await explain_context(models[corpus], context, t)
        (IMAGES / name).write_bytes(explanation_chart(e))
        sys.stdout.write(f"wrote {IMAGES / name}\n")

    tiny = models["tiny-lesson"]
    worked = [await explain_context(tiny, "the", t, rows=None) for t in (1.0, 0.5, 2.0)]
    for e in worked:
        check(e)
    sys.stdout.write("\n" + table(*worked) + "\n")
    sys.stdout.write("\n" + await perplexities(tiny, models["burns"]) + "\n")
    sys.stdout.write("\n" + await lab_table(tiny) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
