"""Chat text → tokens.

Words keep their case and attached punctuation ("darling," and "darling" are different
tokens), because that is what makes generated text read like the people who wrote it.
Discord mentions, custom emoji and URLs stay whole so that a chain never splices half a
link onto another word; code is dropped because it reads as noise once recombined.
"""

from __future__ import annotations

import re
import sys
import unicodedata

from .text import storable

__all__ = ["MAX_TOKENS_PER_MESSAGE", "MAX_TOKEN_CHARS", "tokenize"]

#: Longer "words" are almost always pasted junk (hashes, base64); they are dropped.
MAX_TOKEN_CHARS = 200
#: Beyond this a message is truncated; Discord's own limit (4,000 chars) keeps us far below.
MAX_TOKENS_PER_MESSAGE = 2_000

_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# Whole tokens even when glued to neighbouring text: mentions, channels, roles, custom
# emoji, timestamps and URLs. Anything else is a whitespace-separated word.
_TOKEN = re.compile(
    r"<@!?\d+>|<@&\d+>|<#\d+>|<a?:\w{1,32}:\d+>|<t:-?\d+(?::[tTdDfFR])?>"
    r"|https?://[^\s<>]+"
    r"|[^\s<]+|<"
)
# Invisible characters used to dodge filters or flip text direction. The zero-width
# joiner (U+200D) is kept: it glues emoji sequences such as families and flags together.
_INVISIBLE = dict.fromkeys(
    [
        0x200B,
        0x200C,
        0x200E,
        0x200F,
        0x061C,
        0x2060,
        0xFEFF,
        0x00AD,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)

# Kept for emoji sequences, but a token of joiners alone is not a word.
_JOINER = "\u200d"

# Control characters never belong in chat text; the store also relies on them never
# appearing in a token (its start and end markers are control characters).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    if text.isascii():
        return _CONTROL.sub(" ", text)
    # Invisibles go first: one sitting between a letter and its accent would otherwise
    # stop NFC from composing them.
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", text.translate(_INVISIBLE)))


def tokenize(text: str) -> list[str]:
    """Split one chat message into tokens; an empty list means nothing worth learning."""
    text = storable(text)
    text = _INLINE_CODE.sub(" ", _FENCED_CODE.sub(" ", _clean(text)))
    # Interned: a word said a million times is then one string, so a batch of messages
    # waiting to be written holds its vocabulary, not every occurrence (bench/benchmark.py
    # measures the peak memory of learning).
    tokens = [
        sys.intern(t)
        for t in _TOKEN.findall(text)
        if len(t) <= MAX_TOKEN_CHARS and t.strip(_JOINER)
    ]
    return tokens[:MAX_TOKENS_PER_MESSAGE]
