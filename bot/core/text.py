"""Text as it arrives from Discord, made storable.

JSON may carry lone surrogates ("\\ud800" is a valid escape), which Python keeps in a
``str`` but which no UTF-8 encoder accepts: SQLite refuses them, and so does the JSON of a
reply that quotes them. Every way text enters the bot (messages, command options,
autocomplete) goes through :func:`storable` first.
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "storable"]

#: What an unencodable code point becomes: the usual mark of a character lost on the way.
REPLACEMENT = "\ufffd"

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with every code point UTF-8 cannot encode (lone surrogates, the only ones a
    ``str`` can hold) replaced by U+FFFD; text that encodes is returned as is."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)
