"""Chat text → tokens.

Words keep their case and attached punctuation ("darling," and "darling" are different
tokens), because that is what makes generated text read like the people who wrote it.
Discord mentions, custom emoji and URLs stay whole so that a chain never splices half a
link onto another word; code is dropped because it reads as noise once recombined.

Japanese, Chinese, Thai, Khmer and Lao are written without spaces, so a whitespace split
would make a whole sentence one "word". Runs of those scripts are cut into words by ICU's
dictionary-based word break (PyICU's bindings, from the ``pyicu-wheels`` build that bundles
ICU so pip needs no compiler). ICU was chosen over fugashi/MeCab (Japanese only), jieba
(Chinese only) and pythainlp (Thai only) because one maintained engine covers all five;
:func:`join_words` puts them back together without spaces.
"""

from __future__ import annotations

import re
import sys
import threading
import unicodedata
from collections.abc import Iterable

import icu

from bot.core.text import storable

__all__ = ["MAX_TOKENS_PER_MESSAGE", "MAX_TOKEN_CHARS", "join_words", "tokenize"]

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


# ---------------------------------------------------------------- scripts without spaces

# Thai, Lao, Khmer (and Khmer symbols); CJK punctuation, kana, Bopomofo, kanbun, enclosed
# and compatibility CJK; the ideographs (and their extensions in planes 2-3); vertical
# and full-width forms. Korean is left out: it puts spaces between words.
_SPACELESS_CHARS = (
    "\u0e00-\u0eff\u1780-\u17ff\u19e0-\u19ff"
    "\u3000-\u312f\u3190-\u33ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f"
)
# Marks that belong to the character before them (variation selectors, accents).
_ATTACHED_MARKS = "\u0300-\u036f\ufe00-\ufe0f\U000e0100-\U000e01ef"
_HAS_SPACELESS = re.compile(f"[{_SPACELESS_CHARS}]")
_SPACELESS_RUN = re.compile(f"[{_SPACELESS_CHARS}][{_SPACELESS_CHARS}{_ATTACHED_MARKS}]*")
_URL_START = re.compile(r"https?://")

# A break iterator is stateful and costly to create: one per thread, made on first use.
_BREAKERS = threading.local()


def _words_of_run(run: str) -> list[str]:
    """ICU's word segments of one run of a spaceless script (offsets are UTF-16 units)."""
    breaker = getattr(_BREAKERS, "word", None)
    if breaker is None:
        breaker = _BREAKERS.word = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
    units = icu.UnicodeString(run)
    breaker.setText(units)
    words: list[str] = []
    start = breaker.first()
    for end in breaker:
        words.append(str(units[start:end]))
        start = end
    return words


def _segment(token: str) -> list[str]:
    """A whitespace-delimited token with its spaceless-script runs cut into words.

    Whatever lies between the runs (Latin letters, emoji, ASCII punctuation) stays one
    piece, so only the scripts that need it are segmented. URLs are never cut.
    """
    if not _HAS_SPACELESS.search(token) or _URL_START.match(token):
        return [token]
    pieces: list[str] = []
    done = 0
    for run in _SPACELESS_RUN.finditer(token):
        if run.start() > done:
            pieces.append(token[done : run.start()])
        pieces += _words_of_run(run.group())
        done = run.end()
    if done < len(token):
        pieces.append(token[done:])
    return pieces


def _is_spaceless(token: str) -> bool:
    return _SPACELESS_RUN.fullmatch(token) is not None


def join_words(words: Iterable[str]) -> str:
    """Tokens back into text: a space between words, except between two spaceless-script
    words (and their punctuation such as 。、！？), which are written without one."""
    parts: list[str] = []
    before_spaceless = False
    for word in words:
        spaceless = _is_spaceless(word)
        if parts and not (spaceless and before_spaceless):
            parts.append(" ")
        parts.append(word)
        before_spaceless = spaceless
    return "".join(parts)


# ---------------------------------------------------------------------------- tokenize


def tokenize(text: str) -> list[str]:
    """Split one chat message into tokens; an empty list means nothing worth learning."""
    text = storable(text)
    text = _INLINE_CODE.sub(" ", _FENCED_CODE.sub(" ", _clean(text)))
    found: Iterable[str] = _TOKEN.findall(text)
    # Checked once per message, so text without those scripts pays one regex search.
    if not text.isascii() and _HAS_SPACELESS.search(text):
        found = [word for token in found for word in _segment(token)]
    # Interned: a word said a million times is then one string, so a batch of messages
    # waiting to be written holds its vocabulary, not every occurrence (bench/benchmark.py
    # measures the peak memory of learning).
    tokens = [sys.intern(t) for t in found if len(t) <= MAX_TOKEN_CHARS and t.strip(_JOINER)]
    return tokens[:MAX_TOKENS_PER_MESSAGE]
