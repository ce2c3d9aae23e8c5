"""What a Markov model is, independent of where it is kept.

A message contributes one count to every (context → next token) transition it contains,
for contexts of 1 to ``order`` tokens, between a start and an end marker. The same
:func:`contribution` is used to learn a message and to forget it, which is why forgetting
restores the counts exactly. :class:`ModelReader` is everything generation and explanation
need to read; the SQLite store implements it for whole servers, :class:`MemoryModel` for
small selections (one member's or one channel's messages) and for tests.
"""

from __future__ import annotations

import difflib
import random
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from bot.core.sampling import CountClass, classes_from_counts

T = TypeVar("T")

__all__ = [
    "ANCHOR",
    "BOS",
    "COPY_RUN",
    "COPY_SHARE",
    "DEFAULT_ORDER",
    "END_LABEL",
    "EOS",
    "MAX_ORDER",
    "START_LABEL",
    "TEACHING_ORDER",
    "Ahead",
    "EmptyModel",
    "Found",
    "MemoryModel",
    "ModelReader",
    "UnknownStart",
    "anchor_windows",
    "contribution",
    "copy_in",
    "copy_probes",
    "copy_threshold",
    "longest_copy_in",
    "pack",
    "unpack",
]

#: Token ids of the start and end markers; real tokens are numbered from 3 on.
BOS = 1
EOS = 2
#: How the end marker is shown to people. The tokenizer can never produce this string
#: ("<" always splits off), so it cannot be confused with a learned word.
END_LABEL = "<end>"
START_LABEL = "<start>"
DEFAULT_ORDER = 2
#: Bundled corpora and the CLI's demo model use one-word contexts: the word-to-word table a
#: class can read, and the order at which low temperatures visibly loop.
TEACHING_ORDER = 1
MAX_ORDER = 3
#: A run of this many consecutive words of one learned message is a copy whatever the length.
COPY_RUN = 10
#: A run from one learned message covering this share of an output (rounded up) is a copy:
#: chat messages are short, so a parrot repeats a few words that are most of its output.
COPY_SHARE = 0.7


@dataclass(frozen=True, slots=True)
class Copy:
    """How much of an output was found verbatim in one learned message."""

    run: int  # longest run found in one message (0: none as long as the threshold asked)
    whole: bool  # the output is, word for word, one whole learned message
    at: int = 0  # where in the output that run starts (0 for a whole message)

    def is_copy(self, words: int) -> bool:
        """Whether an output of ``words`` words with this overlap counts as a copy."""
        return self.whole or (words > 0 and self.run >= copy_threshold(words))


NO_COPY = Copy(0, False)
#: Tokens per anchor window (every fifth one of each message of 10 tokens or more is
#: indexed); a run of 2 * ANCHOR - 1 words always contains a whole indexed window.
ANCHOR = 5
#: Tokens of each message's start and end that are indexed, for runs too short to hold an
#: anchor (the store's messages_head and messages_tail: 4 * EDGE bytes of the body).
EDGE = 4


def copy_threshold(words: int) -> int:
    """Shortest run that makes an output of ``words`` words a copy: 70% of it, rounded up
    (in integers, so 7 of 10 is exactly 7), and never more than :data:`COPY_RUN`."""
    share = round(COPY_SHARE * 10)
    return max(1, min(COPY_RUN, -(-share * words // 10)))


class EmptyModel(LookupError):
    """Nothing has been learned yet, so there is nothing to generate from."""

    def __init__(self) -> None:
        super().__init__("Nothing has been learned here yet.")


class UnknownStart(LookupError):
    """The words a user asked to start from were never learned."""

    def __init__(self, words: Sequence[str], suggestions: Sequence[str]) -> None:
        self.words = tuple(words)
        self.suggestions = tuple(suggestions)
        shown = " ".join(words)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"I never learned “{shown}”.{hint}")


@dataclass(frozen=True, slots=True)
class Found:
    """The context actually used after back-off, and its successors' count classes."""

    handle: object  # opaque to the core: the store's context id, a tuple for MemoryModel
    context: tuple[int, ...]
    classes: tuple[CountClass, ...]
    total: int = field(init=False)  # Σ count: every step needs it, so it is summed once
    candidates: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum(c.count * c.size for c in self.classes))
        object.__setattr__(self, "candidates", sum(c.size for c in self.classes))

    @property
    def order(self) -> int:
        return len(self.context)


@dataclass(frozen=True, slots=True)
class Ahead:
    """The draws a walk will make next, for a reader whose reads are round trips: with
    them it can read the contexts the walk will reach in the same trip as the one it
    asked for. Only a guess of where to read: what the walk then asks is read as ever.

    ``steps`` draws remain, the first ``masked`` of them with <end> held apart; each
    takes one uniform of ``rng`` (None, or T = 0: the most likely candidate)."""

    rng: random.Random | None
    temperature: float
    steps: int
    masked: int

    def uniforms(self) -> list[float]:
        """The uniforms the next ``steps`` draws take, from a copy of the generator."""
        if self.rng is None or self.temperature == 0.0:
            return [0.0] * self.steps  # the first candidate of the first class: greedy
        peek = random.Random()
        peek.setstate(self.rng.getstate())
        return [peek.random() for _ in range(self.steps)]


class ModelReader(Protocol):
    """Read access to one model (one namespace, or a filtered selection of it)."""

    @property
    def order(self) -> int: ...

    async def run(self, job: Callable[[ModelReader], Awaitable[T]]) -> T:
        """``await job(reader)`` for one request (a generation, an explanation, a step),
        where this model's reads are cheapest: a stored model may run the whole request
        beside its database, and remember reads across requests while the model is
        unchanged. ``job`` must only read through the reader it is given."""

    def foresee(self, ahead: Ahead | None) -> None:
        """What the walk under way will draw next (None: no walk), so that a reader may
        read ahead where it will go; a reader with cheap reads ignores it."""

    async def lookup(self, context: Sequence[int]) -> Found | None:
        """The longest suffix of ``context`` (at most ``order`` tokens) that was seen."""

    async def candidate_at(
        self, found: Found, count: int, offset: int, excluding: Sequence[int] = ()
    ) -> int:
        """The ``offset``-th candidate (in learning order) among those seen ``count`` times,
        not counting the tokens in ``excluding`` (words a knob took out of their class)."""

    async def top_candidates(self, found: Found, limit: int | None) -> list[tuple[int, int]]:
        """(token, count) by count descending, learning order among equals."""

    async def count_of(self, found: Found, token: int) -> int:
        """How often ``token`` followed the context of ``found`` (0: never)."""

    async def counts_of(self, found: Found, tokens: Sequence[int]) -> dict[int, int]:
        """:meth:`count_of` for several tokens in one read (those never seen left out)."""

    async def unigram(self) -> Found | None:
        """Order 0: every learned word with its count (no context), the last back-off."""

    async def resolve(self, words: Sequence[str]) -> list[int]:
        """Token ids of words a user typed: exact spelling first, then ignoring case.

        Raises :class:`UnknownStart` with close known words when one was never learned.
        """

    async def spell(self, tokens: Sequence[int]) -> list[str]:
        """Token ids back to text (the markers as :data:`START_LABEL`, :data:`END_LABEL`)."""

    async def copy_of(self, tokens: Sequence[int], at_least: int) -> Copy:
        """Whether ``tokens`` is a whole learned message, and the longest run of it found
        verbatim in one learned message if that run is ``at_least`` long (any shorter
        shared run may be reported as 0). Its cost must not grow with the corpus."""


def contribution(sequences: Iterable[Sequence[int]], order: int) -> Counter[tuple[int, ...]]:
    """Every (context…, next) transition of a batch of messages, with its count.

    ``sequences`` are messages' token ids without markers. A key is the 1 to ``order``
    tokens of context followed by the next token; the start marker counts as context.
    Messages are laid end to end and counted with ``zip`` so the counting runs in C;
    windows that straddle two messages are exactly those whose context holds an end
    marker, and are dropped.
    """
    stream: list[int] = []
    for seq in sequences:
        stream.append(BOS)
        stream.extend(seq)
        stream.append(EOS)
    counts: Counter[tuple[int, ...]] = Counter()
    for k in range(1, order + 1):
        grams: Counter[tuple[int, ...]] = Counter(
            zip(*(stream[i:] for i in range(k + 1)), strict=False)  # shorter tails end it
        )
        for key in [key for key in grams if EOS in key[:-1]]:
            del grams[key]
        counts.update(grams)
    return counts


def pack(tokens: Sequence[int]) -> bytes:
    """Token ids as little-endian uint32: the store's context keys and message bodies."""
    return struct.pack(f"<{len(tokens)}I", *tokens)


def unpack(blob: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(blob) // 4}I", blob))


def longest_copy_in(tokens: Sequence[int], bodies: Iterable[bytes], at_least: int) -> int:
    """The longest run of ``tokens`` found verbatim in one of ``bodies`` (packed messages),
    or 0 if none is ``at_least`` long.

    Each distinct body is first tested against the text's ``at_least``-token windows (one
    set, built once): most bodies share only a few words and cost one pass over their bytes;
    only a body that holds a window gets the exact length. Duplicates (the same message
    posted many times) are tested once.
    """
    return _longest_run(pack(tokens), bodies, at_least)[0]


def _longest_run(text: bytes, bodies: Iterable[bytes], at_least: int) -> tuple[int, int]:
    """:func:`longest_copy_in` of a packed text, and where in the text the first run that
    long starts (whichever bodies a reader found: the same answer from every reader)."""
    width = 4 * at_least
    if at_least < 1 or len(text) < width:
        return 0, 0
    windows = {text[i : i + width] for i in range(0, len(text) - width + 1, 4)}
    best, sources = 0, []
    for body in set(bodies):
        if any(body[i : i + width] in windows for i in range(0, len(body) - width + 1, 4)):
            run = _longest_packed(text, body, at_least)
            if run > best:
                best, sources = run, [body]
            elif run == best:
                sources.append(body)
    if not best:
        return 0, 0
    width = 4 * best
    held = {b[i : i + width] for b in sources for i in range(0, len(b) - width + 1, 4)}
    starts = (i // 4 for i in range(0, len(text) - width + 1, 4) if text[i : i + width] in held)
    return best, next(starts)


def anchor_windows(body: bytes) -> list[bytes]:
    """Every fifth ANCHOR-token window of a packed message: what the anchors index holds."""
    step = 4 * ANCHOR
    if len(body) < 2 * step:
        return []  # too short to hold a COPY_RUN-word run
    return [body[i : i + step] for i in range(0, len(body) - step + 1, step)]


@dataclass(frozen=True, slots=True)
class CopyProbes:
    """What to look up to find the messages an output may copy, without a scan.

    A message is a candidate when it holds one of ``windows`` as an anchor (a run of 9
    words or more), starts with one of ``heads`` (its first EDGE tokens, or all of it if
    shorter) or ends with one of ``tails`` (its last EDGE tokens). Heads and tails are
    only asked for where a run shorter than 9 words would be a copy, plus the output's
    own start, which finds it as a whole message. A short run from the middle of a longer
    message is not found; the benchmark counts exactly how much that lets through.
    """

    windows: frozenset[bytes]
    heads: frozenset[bytes]
    tails: frozenset[bytes]

    def holds(self, body: bytes) -> bool:
        """Whether the indexes would return ``body``: the in-memory reader's filter, so
        that it and the store judge every output alike."""
        edge = 4 * EDGE
        return (
            body[:edge] in self.heads
            or (len(body) >= edge and body[-edge:] in self.tails)
            or any(w in self.windows for w in anchor_windows(body))
        )


def copy_probes(tokens: Sequence[int], at_least: int) -> CopyProbes:
    body, n, step = pack(tokens), len(tokens), 4 * ANCHOR
    windows = frozenset(body[i : i + step] for i in range(0, len(body) - step + 1, 4))
    short = at_least < 2 * ANCHOR - 1
    starts = range(n - at_least + 1) if short else range(1)
    heads = frozenset(
        body[4 * i : 4 * (i + k)]
        for i in starts
        for k in range(min(at_least, EDGE), EDGE + 1)
        if i + k <= n
    )
    tails = frozenset(
        body[4 * (j - EDGE) : 4 * j] for j in range(max(at_least, EDGE), n + 1) if short
    )
    return CopyProbes(windows, heads, tails)


def copy_in(tokens: Sequence[int], bodies: Iterable[bytes], at_least: int) -> Copy:
    """:class:`Copy` of ``tokens`` against ``bodies`` (packed messages): the one exact
    judgement behind every reader's :meth:`ModelReader.copy_of`."""
    distinct = set(bodies)
    if not tokens:
        return NO_COPY
    text = pack(tokens)
    if text in distinct:
        return Copy(len(tokens), True)
    run, at = _longest_run(text, distinct, at_least)
    return Copy(run, False, at)


def _longest_packed(pa: bytes, pb: bytes, at_least: int) -> int:
    """The longest run two packed sequences share, if ``at_least`` long (else 0): a
    binary search on the run length, each probe a set intersection of windows, so linear
    in the lengths rather than the quadratic textbook table."""

    def shares(n: int) -> bool:
        width = 4 * n
        windows = {pb[i : i + width] for i in range(0, len(pb) - width + 1, 4)}
        return any(pa[i : i + width] in windows for i in range(0, len(pa) - width + 1, 4))

    low, high = at_least, min(len(pa), len(pb)) // 4
    if low > high or not shares(low):
        return 0
    while low < high:
        middle = (low + high + 1) // 2
        if shares(middle):
            low = middle
        else:
            high = middle - 1
    return low


class MemoryModel:
    """A model held in dictionaries: for a few thousand messages, and for tests.

    It is built with the same :func:`contribution` as the store, so both give the same
    distributions for the same messages.
    """

    def __init__(self, order: int = DEFAULT_ORDER) -> None:
        self._order = order
        self._ids: dict[str, int] = {}
        self._words: list[str] = ["", START_LABEL, END_LABEL]
        self._counts: dict[bytes, dict[int, int]] = {}
        self._messages: list[list[int]] = []

    @property
    def order(self) -> int:
        return self._order

    async def run(self, job: Callable[[ModelReader], Awaitable[T]]) -> T:
        return await job(self)  # every read is of the dictionaries as they are

    def learn(self, tokens: Sequence[str]) -> None:
        self.learn_all([tokens])

    def learn_all(self, messages: Iterable[Sequence[str]]) -> None:
        """Learn messages in order; counted in one pass, much faster than one by one."""
        batch = [[self._intern(t) for t in tokens] for tokens in messages if tokens]
        self._messages.extend(batch)
        unigram = self._counts.setdefault(b"", {})  # no context: order 0 (lookup skips it)
        for ids in batch:
            for t in ids:
                unigram[t] = unigram.get(t, 0) + 1
        for key, n in contribution(batch, self._order).items():
            row = self._counts.setdefault(pack(key[:-1]), {})
            row[key[-1]] = row.get(key[-1], 0) + n

    def _intern(self, token: str) -> int:
        if token not in self._ids:
            self._ids[token] = len(self._words)
            self._words.append(token)
        return self._ids[token]

    @property
    def messages(self) -> int:
        return len(self._messages)

    def _ranked(self, ctx: bytes) -> list[tuple[int, int]]:
        return sorted(self._counts[ctx].items(), key=lambda item: (-item[1], item[0]))

    def foresee(self, ahead: Ahead | None) -> None:
        pass  # every read is in memory

    async def lookup(self, context: Sequence[int]) -> Found | None:
        context = tuple(context[-self._order :])
        for start in range(len(context)):
            key = pack(context[start:])
            if key in self._counts:
                classes = classes_from_counts(self._counts[key].values())
                return Found(key, context[start:], classes)
        return None

    async def candidate_at(
        self, found: Found, count: int, offset: int, excluding: Sequence[int] = ()
    ) -> int:
        assert isinstance(found.handle, bytes)
        skip = set(excluding)
        same = [t for t, c in self._ranked(found.handle) if c == count and t not in skip]
        return same[offset]

    async def top_candidates(self, found: Found, limit: int | None) -> list[tuple[int, int]]:
        assert isinstance(found.handle, bytes)
        return self._ranked(found.handle)[:limit]

    async def unigram(self) -> Found | None:
        row = self._counts.get(b"")
        return Found(b"", (), classes_from_counts(row.values())) if row else None

    async def count_of(self, found: Found, token: int) -> int:
        assert isinstance(found.handle, bytes)
        return self._counts[found.handle].get(token, 0)

    async def counts_of(self, found: Found, tokens: Sequence[int]) -> dict[int, int]:
        assert isinstance(found.handle, bytes)
        row = self._counts[found.handle]
        return {t: row[t] for t in tokens if row.get(t, 0) > 0}

    async def resolve(self, words: Sequence[str]) -> list[int]:
        out = []
        for word in words:
            if word in self._ids:
                out.append(self._ids[word])
                continue
            folded = [t for t in self._ids if t.casefold() == word.casefold()]
            if not folded:
                close = difflib.get_close_matches(word, list(self._ids), n=5)
                raise UnknownStart(words, close)
            out.append(self._ids[folded[0]])
        return out

    async def spell(self, tokens: Sequence[int]) -> list[str]:
        return [self._words[t] for t in tokens]

    async def copy_of(self, tokens: Sequence[int], at_least: int) -> Copy:
        probes = copy_probes(tokens, at_least)
        bodies = (b for b in map(pack, self._messages) if probes.holds(b))
        return copy_in(tokens, bodies, at_least)
