"""A picture of one explanation: the learned distribution next to the tempered one.

A table of numbers convinces the few who read it; bars side by side show a whole class in
one glance that a low temperature makes the tall bars taller and a high one levels them.

Rendering happens in worker threads (the bot answers other commands meanwhile), so this
module never touches pyplot or ``rcParams``: every figure is a private
:class:`~matplotlib.figure.Figure` on its own Agg canvas, and every style is passed
explicitly. Only the listed top rows are drawn, so the cost does not grow with the
thousands of candidates a frequent context can have.
"""

from __future__ import annotations

import functools
import io
import math
import unicodedata
from collections.abc import Sequence
from typing import Any

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bot.core.explain import Explanation, Row, explain
from bot.core.model import END_LABEL, START_LABEL
from bot.core.present import CUT_LABELS, shorten, temperature_label
from bot.core.sampling import CountClass, classes_from_counts

__all__ = [
    "MAX_BARS",
    "SMALL_TEMPERATURES",
    "chart_label",
    "explanation_chart",
    "render_figure",
]

#: More groups than this stop being readable on a projector at the sizes used below.
MAX_BARS = 10
#: The temperatures of the small panel: clearly sharper, the learned one, clearly flatter.
SMALL_TEMPERATURES = (0.1, 0.5, 1.0, 2.0)
#: Token labels longer than this are cut: a pasted URL must not push the bars off the chart.
LABEL_CHARS = 12
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 8.0, 100  # 1200 × 800 px: a projector slide, a phone screen

# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency; the
# two bar colours also differ in lightness, so a greyscale projector keeps them apart.
LEARNED_COLOUR = "#56B4E9"  # sky blue
TEMPERED_COLOUR = "#D55E00"  # vermillion
LINE_STYLES: dict[float, tuple[str, str, str]] = {  # colour, marker, dash pattern
    0.1: ("#0072B2", "o", "-"),
    0.5: ("#009E73", "s", "--"),
    1.0: (LEARNED_COLOUR, "^", "-."),
    2.0: ("#E69F00", "D", ":"),
}
END_HATCH = "//"
#: Opacity of the bars of a candidate a stage removed (banned, masked, cut off).
DIMMED = 0.3
INK = "#222222"

# Fonts tried after DejaVu Sans (which matplotlib ships, so it is always there) when they
# happen to be installed: outline fonts only, because Agg cannot draw colour-bitmap emoji.
_FALLBACK_FAMILIES = (
    "Noto Sans",
    "Noto Sans CJK JP",
    "Noto Sans Symbols 2",
    "Noto Emoji",
    "Symbola",
)
# Always dropped: they only join or restyle neighbouring emoji, which Agg draws one by one.
_MODIFIERS = frozenset({0x200D, *range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400)})


@functools.cache
def _families() -> tuple[str, ...]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ("DejaVu Sans", *(f for f in _FALLBACK_FAMILIES if f in installed))


@functools.cache
def _coverage() -> frozenset[int]:
    """Code points every weight we use can draw.

    Matplotlib warns once per missing glyph, and in a worker thread that warning cannot
    be silenced without touching the process-wide filters; knowing the coverage lets the
    labels be made drawable beforehand instead.
    """
    covered: set[int] = set()
    for family in _families():
        per_weight = []
        for weight in ("normal", "bold"):
            props = font_manager.FontProperties(family=family, weight=weight)
            path = font_manager.findfont(props, fallback_to_default=False)
            per_weight.append(set(font_manager.get_font(path).get_charmap()))
        covered |= per_weight[0] & per_weight[1]
    return frozenset(covered)


def chart_label(token: str, width: int = LABEL_CHARS) -> str:
    """``token`` as the chart can show it: characters the fonts lack (typically emoji)
    become their Unicode name, so 🐈 and 😀 stay distinguishable instead of two boxes."""
    covered = _coverage()
    parts = []
    for ch in token:
        if ord(ch) in _MODIFIERS:
            continue
        if ord(ch) in covered or ch == " ":
            parts.append(ch)
        else:
            name = unicodedata.name(ch, "")
            if not name or name.endswith(f"{ord(ch):04X}"):
                name = f"U+{ord(ch):04X}"  # unnamed, or named only by its number (ideographs)
            else:
                name = name.lower()
            parts.append(f"‹{name}›")
    return shorten("".join(parts), width)


def _plain() -> dict[str, Any]:
    """Text properties for anything containing learned text: ``$…$`` is a word, not math."""
    return {"parse_math": False, "usetex": False, "fontfamily": list(_families())}


def _percent(x: float, precise: bool) -> str:
    """A bar's value. Ten pairs of bars leave each bar about 35 px, too narrow for "2.4%"
    beside its neighbour's label, so crowded charts drop the sign (the axis keeps it)."""
    sign = "%" if precise else ""
    if x <= 0.0:
        return "0"
    if x < 0.001:
        return f"<0.1{sign}"
    if precise or x < 0.1:
        return f"{100 * x:.1f}{sign}"
    return f"{100 * x:.0f}{sign}"


def _full_classes(e: Explanation) -> tuple[CountClass, ...]:
    """The whole distribution, or ``()`` when it cannot be known exactly."""
    if e.classes:
        return e.classes
    if e.others == 0 and e.rows:
        return classes_from_counts(r.count for r in e.rows)  # every candidate is listed
    return ()


def _cut_offs(e: Explanation, knobs: bool = True) -> str:
    """ "top-k 3, top-p 0.9" (or ""): named wherever the tempered numbers are, since with a
    cut-off they differ from the plain softmax at T even at T = 1."""
    cuts = []
    if e.top_k:
        cuts.append(f"top-k {e.top_k}")
    if e.top_p:
        cuts.append(f"top-p {e.top_p:g}")
    if knobs:
        cuts += e.knobs.labels()
    return ", ".join(cuts)


def _setting(e: Explanation) -> str:
    cuts = _cut_offs(e)
    return f"T = {temperature_label(e.temperature)}" + (f", {cuts}" if cuts else "")


def _title(e: Explanation) -> str:
    cuts = _cut_offs(e, knobs=False)
    setting = f"T = {temperature_label(e.temperature)}" + (f", {cuts}" if cuts else "")
    knobs = len(e.knobs.labels())
    if knobs:  # named in full in the legend and the footer; a title must stay one line
        setting += f" + {knobs} knob{'s' if knobs != 1 else ''}"
    if e.context == (START_LABEL,):
        return f"How does a message start?  ·  {setting}"
    context = shorten(" ".join(shorten(w, 20) for w in e.context), 40)
    return f"What comes after “{chart_label(context, 40)}”?  ·  {setting}"


def _subtitle(e: Explanation) -> str:
    seen = (
        f"{e.candidates:,} candidate{'s' if e.candidates != 1 else ''} "
        f"seen {e.total:,} time{'s' if e.total != 1 else ''}"
    )
    backed = " (backed off to a shorter context)" if e.backed_off else ""
    return (
        f"{seen}{backed}\n"
        f"T = 1: entropy {e.entropy_t1:.2f} bits ≈ {_choices(e.perplexity_t1)} effective "
        f"choices   →   {_setting(e)}: {e.entropy_t:.2f} bits ≈ {_choices(e.perplexity_t)}"
    )


def _choices(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _share(x: float) -> str:
    return "<0.1%" if 0.0 < x < 0.0005 else f"{x:.1%}"  # never "0.0%" for a live tail


def _footer(e: Explanation, drawn: Sequence[Row]) -> str:
    t = temperature_label(e.temperature)
    notes = []
    hidden = e.candidates - len(drawn)
    if hidden > 0:
        hidden_p = max(0.0, 1.0 - sum(r.p for r in drawn))
        hidden_prob = max(0.0, 1.0 - sum(r.prob for r in drawn))
        notes.append(
            f"Not drawn: {hidden:,} other candidate{'s' if hidden != 1 else ''}, "
            f"{_share(hidden_p)} of the probability at T = 1 and {_share(hidden_prob)} "
            f"at T = {t}."
        )
    cuts = _cut_offs(e)
    if cuts:
        notes.append(f"Then {cuts.replace(', ', ' and ')}, renormalised.")
    formula = (
        "At T = 0 every draw takes the most frequent candidate: the limit of T → 0."
        if e.temperature == 0
        else "At T: softmax(ln p ÷ T), the same as p^(1/T) rescaled to sum to 1."
    )
    return "\n".join([" ".join(notes), formula] if notes else [formula])


def _bars(ax: Axes, e: Explanation, rows: Sequence[Row]) -> None:
    positions = list(range(len(rows)))
    width = 0.4
    is_end = [r.token == END_LABEL for r in rows]
    learned = ax.bar(
        [x - width / 2 for x in positions],
        [r.p for r in rows],
        width,
        color=LEARNED_COLOUR,
        edgecolor=INK,
        linewidth=0.8,
    )
    cuts = _cut_offs(e, knobs=False)
    tempered_label = f"at T = {temperature_label(e.temperature)}" + (f", {cuts}" if cuts else "")
    if e.knobs.labels():
        tempered_label += "\n" + "\n".join(e.knobs.labels())
    learned_label = "learned (T = 1" + (", no cut-off)" if _cut_offs(e) else ")")
    tempered = ax.bar(
        [x + width / 2 for x in positions],
        [r.prob for r in rows],
        width,
        color=TEMPERED_COLOUR,
        edgecolor=INK,
        linewidth=0.8,
    )
    for container in (learned, tempered):
        for bar, end, row in zip(container.patches, is_end, rows, strict=True):
            if end:
                bar.set_hatch(END_HATCH)
            if row.removed_by:  # dimmed: a stage of the pipeline removed it
                bar.set_alpha(DIMMED)

    precise = len(rows) <= 6
    label_size = 14 if precise else 12
    for container, values in ((learned, [r.p for r in rows]), (tempered, [r.prob for r in rows])):
        cut = container is tempered
        ax.bar_label(
            container,
            labels=[
                CUT_LABELS.get(r.removed_by, r.removed_by)
                if cut and r.removed_by
                else _percent(v, precise)
                for v, r in zip(values, rows, strict=True)
            ],
            padding=3,
            fontsize=label_size,
            color=INK,
            parse_math=False,
        )

    labels = [chart_label(r.token) for r in rows]
    crowded = len(rows) * max(len(s) for s in labels) > 70
    ax.set_xticks(
        positions,
        labels,
        fontsize=16,
        rotation=30 if crowded else 0,
        ha="right" if crowded else "center",
        rotation_mode="anchor",
        **_plain(),
    )
    for tick, end in zip(ax.get_xticklabels(), is_end, strict=True):
        if end:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(rows) - 0.4)

    top = max(max(r.p for r in rows), max(r.prob for r in rows))
    ax.set_ylim(0, top * 1.15)  # room for the value labels
    _percent_axis(ax)
    ax.tick_params(axis="y", labelsize=14)
    ax.set_ylabel("probability of coming next" + ("" if precise else " (%)"), fontsize=15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    # Proxies rather than the containers: a hatched <end> bar must not make the legend's
    # colour swatches look hatched too.
    handles = [
        Patch(facecolor=LEARNED_COLOUR, edgecolor=INK, label=learned_label),
        Patch(facecolor=TEMPERED_COLOUR, edgecolor=INK, label=tempered_label),
    ]
    if any(is_end):
        handles.append(
            Patch(facecolor="white", edgecolor=INK, hatch=END_HATCH, label="<end>:\nmessage ends")
        )
    if any(r.removed_by for r in rows):
        handles.append(
            Patch(
                facecolor=TEMPERED_COLOUR,
                edgecolor=INK,
                alpha=DIMMED,
                label="dimmed: removed by\nthe stage named",
            )
        )
    # Outside the axes, so no distribution (a flat one least of all) can hide under it.
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=14, frameon=False
    )


def _temperatures(
    ax: Axes, e: Explanation, rows: Sequence[Row], classes: Sequence[CountClass]
) -> None:
    positions = list(range(len(rows)))
    top = [(r.token, r.count) for r in rows]
    # The knobs' logits as the main panel had them (they do not depend on T).
    adjusted = {
        r.token: (r.adjusted_logit, r.removed_by if r.adjusted_logit == -math.inf else None)
        for r in rows
        if r.adjusted_logit is not None
    }
    if any(r.masked for r in rows):
        adjusted |= {r.token: (-math.inf, "masked") for r in rows if r.masked}
    highest = 0.0
    for t in SMALL_TEMPERATURES:
        # explain() places each listed row in its count class exactly as the main panel
        # did, so both panels agree to the last digit at the chosen temperature.
        again = explain((), (), classes, top, t, e.top_k, e.top_p, knobs=e.knobs, adjusted=adjusted)
        prob_of = {r.token: r.prob for r in again.rows}
        probs = [prob_of[r.token] for r in rows]
        highest = max(highest, *probs)
        colour, marker, dash = LINE_STYLES[t]
        chosen = t == e.temperature
        ax.plot(
            positions,
            probs,
            color=colour,
            marker=marker,
            linestyle=dash,
            linewidth=3.5 if chosen else 2.0,
            markersize=9 if chosen else 7,
            label=f"T = {t:g}" + (" (chosen)" if chosen else ""),
        )
    ax.set_ylim(0, max(highest, 0.01) * 1.1)
    _percent_axis(ax, bins=3)  # a short panel: few gridlines
    ax.tick_params(axis="y", labelsize=12)
    # The lower panel is read on its own too: its words are labelled like the bars above.
    ax.tick_params(axis="x", labelbottom=True, labelsize=12)
    for tick in ax.get_xticklabels():
        tick.update(_plain())
    cuts = _cut_offs(e)
    cut = f" (same cut-offs: {cuts})" if cuts else ""
    ax.set_title(
        f"The same candidates at other temperatures{cut}", fontsize=14, loc="left", color=INK
    )
    ax.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=12, frameon=False)


def _percent_axis(ax: Axes, bins: int = 6) -> None:
    # Steps of 1, 2 or 5 only: at 2.5 a whole-percent label would print 7.5 % as "8%".
    ax.yaxis.set_major_locator(MaxNLocator(nbins=bins, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{round(100 * y, 6):g}%"))


def render_figure(e: Explanation) -> Figure:
    """The chart as a figure with its Agg canvas attached, ready to save.

    ``figure.axes[0]`` holds the bars (two per drawn candidate); ``figure.axes[1]``, when
    the whole distribution is known, the lines at :data:`SMALL_TEMPERATURES`.
    """
    if not e.rows:
        raise ValueError("an explanation without candidates has nothing to draw")
    rows = e.rows[:MAX_BARS]
    classes = _full_classes(e)

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(_title(e), fontsize=22, fontweight="bold", color=INK, **_plain())
    if classes:
        grid = fig.add_gridspec(2, 1, height_ratios=(3.0, 1.25))
        main = fig.add_subplot(grid[0])
        small = fig.add_subplot(grid[1], sharex=main)
    else:
        main = fig.add_subplot()
    main.set_title(_subtitle(e), fontsize=15, loc="left", color=INK, **_plain())
    _bars(main, e, rows)
    if classes:
        _temperatures(small, e, rows, classes)
    fig.supxlabel(_footer(e, rows), fontsize=12, color="#444444", **_plain())
    return fig


def explanation_chart(e: Explanation) -> bytes:
    """The PNG of :func:`render_figure`; safe to call from several threads at once."""
    buffer = io.BytesIO()
    render_figure(e).savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()
