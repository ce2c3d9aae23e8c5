"""Explanation charts: valid PNGs, one pair of bars per drawn candidate, greedy decoding,
awkward labels, the end marker, thread safety, speed on a huge context, and the CLI.

The corpus, learned into a MemoryModel with one-word contexts:

    the cat sat / the cat ran / the dog ran / the $x$ moved / the 🐈 purred / the

so "the" is followed by cat ×2 and <end>, dog, $x$ and 🐈 ×1 each (six times in all).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.image import imread
from matplotlib.patches import Rectangle

from bot.core.charts import (
    MAX_BARS,
    SMALL_TEMPERATURES,
    chart_label,
    explanation_chart,
    render_figure,
)
from bot.core.explain import Explanation
from bot.core.generate import explain_context
from bot.core.model import END_LABEL, MemoryModel
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA, read_lines

CORPUS = ["the cat sat", "the cat ran", "the dog ran", "the $x$ moved", "the 🐈 purred", "the"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def memory_model(lines: list[str]) -> MemoryModel:
    model = MemoryModel(order=1)
    for line in lines:
        model.learn(tokenize(line))
    return model


@pytest.fixture
def model() -> MemoryModel:
    return memory_model(CORPUS)


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_MAGIC)
    pixels: np.ndarray = imread(io.BytesIO(png), format="png")
    return pixels


def bars(ax: Axes) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def assert_valid_chart(png: bytes) -> None:
    pixels = decode(png)
    height, width = pixels.shape[:2]
    assert 1000 <= width <= 1400 and 600 <= height <= 1000
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


# ---------------------------------------------------------------------------- the picture


async def test_chart_is_a_png_of_the_intended_size(model: MemoryModel) -> None:
    e = await explain_context(model, "the", 0.5)
    png = explanation_chart(e)
    assert_valid_chart(png)
    assert decode(png).shape[:2] == (800, 1200)


async def test_one_pair_of_bars_per_candidate_with_the_right_heights(model: MemoryModel) -> None:
    e = await explain_context(model, "the", 0.5)
    # The end marker is the first word a model knows, so it leads the candidates seen once.
    assert [r.token for r in e.rows] == ["cat", END_LABEL, "dog", "$x$", "🐈"]
    fig = render_figure(e)
    main, small = fig.axes
    rects = bars(main)
    assert len(rects) == 2 * len(e.rows)
    learned, tempered = rects[: len(e.rows)], rects[len(e.rows) :]
    assert [r.get_height() for r in learned] == pytest.approx([r.p for r in e.rows])
    assert [r.get_height() for r in tempered] == pytest.approx([r.prob for r in e.rows])
    assert [t.get_text() for t in main.get_xticklabels()][:4] == ["cat", END_LABEL, "dog", "$x$"]
    # The small panel: one line per temperature and no bars.
    assert bars(small) == []
    assert len(small.lines) == len(SMALL_TEMPERATURES)
    legend = main.get_legend()
    assert legend is not None
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["learned (T = 1)", "at T = 0.5"]


async def test_cut_offs_are_named_where_their_numbers_are(model: MemoryModel) -> None:
    """With top-k the tempered bars differ from softmax at T, even at T = 1: say so."""
    e = await explain_context(model, "the", 1.0, top_k=2, top_p=0.9)
    fig = render_figure(e)
    main, small = fig.axes
    legend = main.get_legend()
    assert legend is not None
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["learned (T = 1, no cut-off)", "at T = 1, top-k 2, top-p 0.9"]
    assert "top-k 2, top-p 0.9" in fig.get_suptitle()
    assert "top-k 2, top-p 0.9" in small.get_title(loc="left")
    # The lower panel labels its words too, the same words as the bars above.
    fig.canvas.draw()
    lower = [t.get_text() for t in small.get_xticklabels() if t.get_visible()]
    assert lower == [t.get_text() for t in main.get_xticklabels()]
    assert lower[:2] == ["cat", END_LABEL]


async def test_small_panel_recomputes_each_temperature_from_the_counts(
    model: MemoryModel,
) -> None:
    e = await explain_context(model, "the", 1.0)
    small = render_figure(e).axes[1]
    for t, line in zip(SMALL_TEMPERATURES, small.lines, strict=True):
        # cat was seen twice, the other four once: p^(1/T), renormalised by hand.
        weights = [(2 / 6) ** (1 / t)] + [(1 / 6) ** (1 / t)] * 4
        expected = [w / sum(weights) for w in weights]
        assert list(line.get_ydata()) == pytest.approx(expected)
    # At the chosen temperature the line and the bars agree.
    chosen = small.lines[SMALL_TEMPERATURES.index(1.0)]
    assert list(chosen.get_ydata()) == pytest.approx([r.prob for r in e.rows])
    assert chosen.get_linewidth() > small.lines[0].get_linewidth()


async def test_greedy_puts_everything_on_one_bar(model: MemoryModel) -> None:
    e = await explain_context(model, "the", 0.0)
    fig = render_figure(e)
    tempered = bars(fig.axes[0])[len(e.rows) :]
    assert [r.get_height() for r in tempered] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert "greedy" in fig.get_suptitle()
    assert_valid_chart(explanation_chart(e))


async def test_a_single_candidate_still_draws(model: MemoryModel) -> None:
    e = await explain_context(model, "purred", 0.5)  # only ever followed by the end
    fig = render_figure(e)
    assert len(bars(fig.axes[0])) == 2
    assert_valid_chart(explanation_chart(e))


async def test_end_marker_is_hatched_and_named(model: MemoryModel) -> None:
    e = await explain_context(model, "the", 2.0)
    main = render_figure(e).axes[0]
    labels = [t.get_text() for t in main.get_xticklabels()]
    end = labels.index(END_LABEL)
    n = len(e.rows)
    rects = bars(main)
    for i, rect in enumerate(rects):
        assert bool(rect.get_hatch()) == (i % n == end)
    legend = main.get_legend()
    assert legend is not None
    assert any(END_LABEL in t.get_text() for t in legend.get_texts())


async def test_dollars_and_emoji_are_shown_literally_without_warnings(
    model: MemoryModel,
) -> None:
    e = await explain_context(model, "the", 0.5)
    fig = render_figure(e)
    ticks = fig.axes[0].get_xticklabels()
    assert all(not t.get_parse_math() for t in ticks)
    labels = [t.get_text() for t in ticks]
    assert "$x$" in labels
    assert labels[4] in ("🐈", "‹cat›")  # the glyph where a font has it, else its name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph or a mathtext error would raise
        assert_valid_chart(explanation_chart(e))


def test_labels_are_cut_and_made_drawable() -> None:
    assert chart_label("a" * 50) == "a" * 11 + "…"
    assert chart_label("$\\frac{1}{0}$") == "$\\frac{1}{0…"
    for token in ["😀🐈", "中文", "👍🏽", "👨‍👩‍👧"]:
        label = chart_label(token, 200)
        assert label and "\u200d" not in label
    assert chart_label("🐈", 200) in ("🐈", "‹cat›")


async def test_long_and_unusual_tokens_render(tmp_path: Path) -> None:
    model = memory_model(
        [
            "go https://example.com/a/very/long/path/that/never/ends?with=query&and=more",
            "go supercalifragilisticexpialidocious",
            "go 中文 text",
            "go $\\frac{1}{0}$ oops",
            "go \\$_^{}% odd",
            "go 👨‍👩‍👧 family",
            "go 👍🏽 thumbs",
            "go مرحبا hello",
        ]
    )
    e = await explain_context(model, "go", 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_valid_chart(explanation_chart(e))


async def test_only_the_top_rows_are_drawn_and_it_is_fast() -> None:
    # 3,000 distinct successors of "x", with a few hundred distinct counts.
    lines = [f"x w{i}" for i in range(3000)] + [f"x w{i % 300}" for i in range(6000)]
    model = memory_model(lines)
    e = await explain_context(model, "x", 0.5, rows=40)
    assert e.candidates == 3000
    explanation_chart(e)  # fonts and caches warm up once per process
    start = time.perf_counter()
    fig = render_figure(e)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    elapsed = time.perf_counter() - start
    assert len(bars(fig.axes[0])) == 2 * MAX_BARS
    assert_valid_chart(png.getvalue())
    assert elapsed < 2.0, f"rendering took {elapsed:.2f} s"


async def test_explanation_without_classes_falls_back(model: MemoryModel) -> None:
    complete = await explain_context(model, "the", 0.5)
    fig = render_figure(dataclasses.replace(complete, classes=()))
    assert len(fig.axes) == 2  # every candidate is listed, so the counts are all known
    partial = await explain_context(model, "the", 0.5, rows=2)
    fig = render_figure(dataclasses.replace(partial, classes=()))
    assert len(fig.axes) == 1  # the tail is unknown: no guessed numbers
    assert len(bars(fig.axes[0])) == 4
    with pytest.raises(ValueError):
        render_figure(dataclasses.replace(complete, rows=()))


async def test_renders_in_worker_threads_at_the_same_time(model: MemoryModel) -> None:
    explanations: list[Explanation] = [
        await explain_context(model, "the", t) for t in (0.0, 0.5, 1.0, 2.0)
    ]
    alone = [decode(explanation_chart(e)) for e in explanations]
    together = await asyncio.gather(
        *(asyncio.to_thread(explanation_chart, e) for e in explanations + explanations)
    )
    for i, png in enumerate(together):
        assert np.array_equal(decode(png), alone[i % len(explanations)])


# ---------------------------------------------------------------------------- the lesson


async def test_tiny_lesson_worked_example_matches_the_hand_formula() -> None:
    """The numbers in docs/teaching.md: after "the", cat 4, dog 2, mat 1, sun 1."""
    corpus = CORPORA["tiny-lesson"]
    assert corpus.path.is_file() and corpus.licence == "CC0"
    model = MemoryModel(order=1)
    for _, line in read_lines(corpus.path):
        model.learn(tokenize(line))
    e1 = await explain_context(model, "the", 1.0)
    assert [(r.token, r.count) for r in e1.rows] == [("cat", 4), ("dog", 2), ("mat", 1), ("sun", 1)]
    assert e1.entropy_t1 == pytest.approx(1.75)
    half = await explain_context(model, "the", 0.5)
    assert [r.prob for r in half.rows] == pytest.approx([16 / 22, 4 / 22, 1 / 22, 1 / 22])
    double = await explain_context(model, "the", 2.0)
    roots = [math.sqrt(p) for p in (0.5, 0.25, 0.125, 0.125)]
    assert [r.prob for r in double.rows] == pytest.approx([r / sum(roots) for r in roots])
    ran = await explain_context(model, "ran", 1.0)
    assert [(r.token, r.count) for r in ran.rows] == [(END_LABEL, 2), ("after", 1)]


# ---------------------------------------------------------------------------- the CLI


def test_cli_writes_the_chart(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKOV_", "DISCORD_"))}
    chart = tmp_path / "c.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "--db",
            str(tmp_path / "m.db"),
            "explain",
            "When",
            "--temp",
            "0.5",
            "--chart",
            str(chart),
        ],
        cwd=tmp_path,  # no stray .env is read
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Chart written to" in result.stdout
    assert_valid_chart(chart.read_bytes())
