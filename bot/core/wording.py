"""The small phrases every view shares, spelled once.

A class compares the terminal with Discord line by line, so "context of 1 word", the start
of a message and the note about unknown words must read the same everywhere: each is built
here and nowhere else. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.model import START_LABEL

__all__ = [
    "CHANGED_BY_KNOBS",
    "START_PHRASE",
    "context_phrase",
    "context_size",
    "plural",
    "seed_phrase",
    "unknown_note",
]

#: How the start context (the start marker alone) is named to people.
START_PHRASE = "(start of a message)"
#: A step whose word a knob changed (the same draw without the knobs gives another word).
CHANGED_BY_KNOBS = "a penalty/bias/ban changed the word"


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """ "1 candidate", "2 candidates", "1,000 candidates" (``nouns`` for irregular ones)."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def context_size(n: int) -> str:
    """The one spelling of a context's length: "context of 1 word"."""
    return f"context of {plural(n, 'word')}"


def context_phrase(context: Sequence[str], width: int | None = None) -> str:
    """A context quoted for people: “the cat”, or the start of a message by name."""
    if not context or tuple(context) == (START_LABEL,):
        return START_PHRASE
    text = " ".join(context)
    if width is not None and len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return f"“{text}”"


def seed_phrase(seed: int, temperature: float) -> str | None:
    """ "seed 42", or None at T = 0: greedy decoding draws nothing, so no seed applies."""
    return None if temperature == 0 else f"seed {seed}"


def unknown_note(unknown: Sequence[str], used: Sequence[str]) -> str:
    """What a back-off over unknown words did, as a sentence: Never saw “banana”; using “sat”."""
    missing = ", ".join(f"“{w}”" for w in unknown)
    return f"Never saw {missing}; using {context_phrase(used)}."
