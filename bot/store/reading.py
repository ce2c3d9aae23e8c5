"""What a :class:`bot.core.model.ModelReader` over a stored namespace does with the rows it
reads: the same on both backends, which supply only the queries.

A context with at most ``SMALL`` candidates (nearly all of them) comes back from
:meth:`lookup` whole, so drawing from it needs no second trip. Among candidates sharing a
count, the order is token id order, which is the order words were first learned in.

Every request walks the same hot contexts (the start of a message above all), and each
read is a round trip to the database, which dominates a generation's time. So a
:class:`ReadCache` shared by a store's readers remembers lookups and draws across requests,
under the namespace's *version*: a number every write of its counts raises in the same
transaction. :meth:`StoredModel.run` reads it once per request. A write by this store says
which contexts it changed, and only those are read again; any other new version (another
process wrote) is read afresh. A changed model is thus never answered from memory.
"""

from __future__ import annotations

import difflib
import marshal
import threading
from abc import ABC, abstractmethod
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from cachetools import LRUCache

from bot.core.model import (
    BOS,
    END_LABEL,
    EOS,
    NO_COPY,
    START_LABEL,
    Ahead,
    Copy,
    Found,
    ModelReader,
    UnknownStart,
    copy_in,
    copy_probes,
    pack,
    unpack,
)
from bot.core.sampling import classes_of_shape, count_classes
from bot.store.base import Namespace
from bot.store.kernels import Grams, anchor

__all__ = [
    "NEW_VERSION",
    "PER_PROBE",
    "SMALL",
    "Change",
    "ReadCache",
    "StoredModel",
]

T = TypeVar("T")

SMALL = 64  # candidates a lookup returns with the classes
PER_PROBE = 64  # messages read per kind of originality probe: the check's cost is bounded
CLASS_READ = 1 << 13  # a class drawn from often is read whole, up to this size
MARK = 256  # a larger class is drawn from by its every 256th member (its marks)
RENT = 2048  # members a whole read returns in the time one draw's read of a member takes
CACHED = 32_768  # weight a store remembers: one per read, plus one per 512 class members
CHANGES = 65_536  # contexts changed by this store's writes it keeps track of
MEMBERS_PER_SLOT = 512  # (an array of 512 ids is 4 kB, about what a small lookup takes)


#: Run by every transaction that changes a namespace's counts (both backends).
NEW_VERSION = "UPDATE namespaces SET version = version + 1 WHERE id = ? RETURNING version"


class Change(NamedTuple):
    """A committed write of a namespace's counts: its new version and the packed contexts
    it changed (b"": the vocabulary, and so every message), or None if too many to list."""

    ns_id: int
    version: int
    touched: list[bytes] | None

    @classmethod
    def of(cls, ns_id: int, version: int | None, batch: Sequence[Grams]) -> Change:
        """The change a learned or forgotten ``batch`` made at ``version`` (None: the
        namespace is gone); too many contexts to track (a bulk import) are not listed."""
        if version is None or sum(len(g.contexts) for g in batch) >= CHANGES // 2:
            return cls(ns_id, int(version or 0), None)
        touched = {b""}
        for g in batch:
            blob, width = g.contexts.tobytes(), 4 * g.k
            touched.update(blob[i : i + width] for i in range(0, len(blob), width))
        return cls(ns_id, int(version), list(touched))


class ReadCache:
    """Reads of every namespace of one store, each remembered with the version of the
    namespace it was read at and the contexts its answer depends on.

    A write by this store says which contexts it changed (:meth:`advance`), so only reads
    of those are read again: a server learning as it chats keeps the rest of its cache. A
    version this store did not write (another process, a purge) drops the namespace's
    reads at its next request. Thread-safe: SQLite's requests run in their own thread."""

    def __init__(self, size: int = CACHED, changes: int = CHANGES) -> None:
        self._entries: LRUCache[tuple[Any, ...], Any] = LRUCache(maxsize=size, getsizeof=_weight)
        self._lock = threading.Lock()
        self._at: dict[int, tuple[Any, int]] = {}  # ns id: (created, version) known valid
        self._floor: dict[int, int] = {}  # ns id: reads at an earlier version are stale
        self._changed: OrderedDict[tuple[int, bytes], int] = OrderedDict()  # -> version
        self._changes = changes
        self.hits = 0
        self.misses = 0

    def begin(self, ns_id: int, created: Any, version: int) -> None:
        """A request starts at ``version``: one this store did not see coming (written
        elsewhere) makes every earlier read of the namespace stale."""
        with self._lock:
            if self._at.get(ns_id) != (created, version):
                self._at[ns_id] = (created, version)
                self._floor[ns_id] = version

    def advance(self, *changes: Change) -> None:
        """This store committed ``changes``: reads of the contexts they touched are stale,
        and the others stay valid at the new version if the store saw the one before it."""
        with self._lock:
            for ns_id, version, touched in changes:
                at = self._at.get(ns_id)
                if touched is None:
                    self._at.pop(ns_id, None)
                    continue
                for key in touched:
                    self._changed[(ns_id, key)] = version
                    self._changed.move_to_end((ns_id, key))
                while len(self._changed) > self._changes:
                    (old_ns, _), seen = self._changed.popitem(last=False)
                    self._floor[old_ns] = max(self._floor.get(old_ns, 0), seen)
                if at is not None and at[1] == version - 1:
                    self._at[ns_id] = (at[0], version)

    def get(self, version: tuple[Any, ...], key: tuple[Any, ...], last: bool = True) -> Any:
        """The read remembered under ``key``; a miss counts unless another key will be
        tried (not ``last``), so ``misses`` counts the reads the cache could not spare."""
        ns_id, created, at = version
        with self._lock:
            entry = self._entries.get((ns_id, created, *key), _MISSING)
            if entry is not _MISSING and self._valid(ns_id, created, at, entry):
                self.hits += 1
                return entry[2]
            self.misses += last
            return _MISSING

    def _valid(self, ns_id: int, created: Any, at: int, entry: tuple[Any, ...]) -> bool:
        stamp, deps, _ = entry
        if self._at.get(ns_id) != (created, at) or stamp < self._floor.get(ns_id, 0):
            return False
        return all(self._changed.get((ns_id, d), -1) <= stamp for d in deps)

    def put(self, version: tuple[Any, ...], key: tuple[Any, ...], value: Any) -> None:
        ns_id, created, at = version
        with self._lock:
            if self._at.get(ns_id) == (created, at):  # else: read at a version now past
                self._entries[(ns_id, created, *key)] = (at, _depends_on(key), value)


def _depends_on(key: tuple[Any, ...]) -> tuple[bytes, ...]:
    """The stored contexts a remembered read depends on: every suffix of a lookup's
    context (a longer one may become known), else the context it names (b"": the
    vocabulary, which every learned or forgotten message changes, copies included)."""
    kind = key[0]
    if kind == "lookup":
        context = key[1]
        return tuple(pack(context[i:]) for i in range(len(context))) or (b"",)
    if kind in ("unigram", "copy"):
        return (b"",)
    return (key[1],)


_MISSING = object()


def _weight(entry: tuple[Any, ...]) -> int:
    """A whole count class or context (the start of a message has thousands of candidates)
    weighs by its size, so a few large ones cannot crowd out the many small reads."""
    value = entry[2]
    if isinstance(value, dict):  # a context's classes (or a few words' counts: weight 1)
        return 1 + sum(len(v) for v in value.values() if isinstance(v, array)) // MEMBERS_PER_SLOT
    return 1 + len(value) // MEMBERS_PER_SLOT if isinstance(value, array) else 1


def _nth_without(members: Sequence[int], skip: Sequence[int], offset: int) -> int | None:
    """The ``offset``-th of the ascending ``members`` once those in ``skip`` are left out,
    found by bisection: a class can hold 100,000 words and a knob can hold 100 apart."""
    held = sorted(
        at for t in skip if (at := bisect_left(members, t)) < len(members) and members[at] == t
    )
    for at in held:  # each held-apart member at or before the answer moves it one further
        if at > offset:
            break
        offset += 1
    return int(members[offset]) if offset < len(members) else None


def _classes_of(nexts: Any, counts: Any) -> dict[int, array[int]]:
    """A context's candidates (numpy arrays) as its classes: count -> ascending members."""
    import numpy as np

    order = np.lexsort((nexts, counts))
    nexts, counts = nexts[order].astype(np.int64), counts[order]
    classes: dict[int, array[int]] = {}
    cuts = np.flatnonzero(np.diff(counts)) + 1
    for members, same in zip(np.split(nexts, cuts), np.split(counts, cuts), strict=True):
        if len(members):
            classes[int(same[0])] = array("q", members.tobytes())
    return classes


#: What :class:`StoredModel` keeps in :attr:`Found.handle`: the context's key
#: (classes.ctx / transitions.ctx), its (next, count) pairs by next if few, and how often
#: <end> followed (the end marker is the first id, so always read). Plain tuples of
#: numbers and bytes, so that the read cache can keep a lookup as bytes (marshal).
_Context = tuple[bytes, tuple[tuple[int, int], ...] | None, int]


def _context(found: Found) -> _Context:
    assert isinstance(found.handle, tuple)
    return found.handle


Rows = list[Sequence[Any]]


def _found(rows: Rows) -> Found | None:
    """One context's lookup rows, (node, ctx, count, size) per class then (node, None,
    next, count) per candidate (all of them if at most ``SMALL``, else at least the first),
    as a :class:`Found`; None if it has no class. (Columns after those four are not this
    function's.)"""
    kept = [r for r in rows if r[1] is not None]
    if not kept:
        return None
    classes = count_classes((int(r[2]), int(r[3])) for r in kept)
    key = bytes(kept[0][1])
    candidates = [(int(r[2]), int(r[3])) for r in rows if r[1] is None]
    few = tuple(candidates) if sum(c.size for c in classes) <= SMALL else None
    end = next((c for t, c in candidates[:1] if t == EOS), 0)
    return Found((key, few, end), tuple(unpack(key)), classes)


def _by_node(rows: Rows) -> dict[int, Rows]:
    by_node: dict[int, Rows] = {}
    for row in rows:
        by_node.setdefault(int(row[0]), []).append(row)
    return by_node


class StoredModel(ABC):
    """One namespace of a store, read one round trip per method."""

    reads_ahead = True  # whether a read may return rows for more than what it asked

    def __init__(self, ns: Namespace, cache: ReadCache) -> None:
        self.ns = ns
        self._cache = cache
        self._version: tuple[Any, ...] | None = None  # None: read through (no begin yet)
        self._ahead: Ahead | None = None  # the walk under way's next draws

    @property
    def order(self) -> int:
        return self.ns.order

    # ------------------------------------------------------------------ the backend's queries

    @abstractmethod
    async def _version_row(self) -> Sequence[Any] | None:
        """(created, version) of the namespace; None once it is gone."""

    @abstractmethod
    async def _lookup_rows(self, keys: list[bytes], ahead: Ahead | None) -> Rows:
        """The longest of ``keys`` that is a known context: (0, ctx, count, size) per class,
        then (0, None, next, count) for its first ``SMALL + 1`` candidates by next.

        A backend whose reads are round trips may add the same rows, numbered 1, 2, ...,
        for contexts a walk can reach from it next (see :meth:`_read_lookup`), the path
        ``ahead`` foretells above all, and (-2, ctx, count, offset, token) for the draws
        it foretold from a context with more than ``SMALL`` candidates."""

    @abstractmethod
    async def _members(
        self,
        key: bytes,
        count: int,
        skip: list[int],
        offset: int,
        limit: int | None,
        start: int = 0,
    ) -> list[int]:
        """Candidates (token id order) with ``count`` (key b"": words) and an id of at
        least ``start``, from the ``offset``-th on, at most ``limit``, not counting the
        tokens in ``skip``."""

    @abstractmethod
    async def _marks(self, key: bytes, count: int, every: int) -> list[int]:
        """Every ``every``-th candidate with ``count`` (key b"": words) in token id order,
        the first included."""

    def _class_of(self, key: bytes, count: int) -> tuple[str, str, list[str], tuple[Any, ...]]:
        """Where a count class lives, the vocabulary (key b"") or one context's candidates:
        its table, its members' column, and the columns that select it with their values."""
        if not key:
            return "vocab", "id", ["ns", "count"], (self.ns.id, count)
        return "transitions", "next", ["ns", "ctx", "count"], (self.ns.id, key, count)

    async def _draw_rows(
        self,
        key: bytes,
        count: int,
        skip: list[int],
        offset: int,
        whole: bool,
        start: int,
        ahead: Ahead | None,
    ) -> tuple[list[int], Rows]:
        """A draw from a class: with ``whole``, all its members, else its ``offset``-th
        from ``start`` on not in ``skip``. A backend whose reads are round trips may add,
        numbered from 0, the rows :meth:`_lookup_rows` gives for the context that member
        makes (where the walk goes next) and for those read ahead from it, or on the path
        ``ahead`` foretells from there (its draws after this one)."""
        if whole:
            return await self._members(key, count, [], 0, None), []
        return await self._members(key, count, skip, offset, 1, start), []

    @abstractmethod
    async def _context_rows(self, key: bytes) -> tuple[Any, Any]:
        """Every candidate of a context and its count, as two numpy arrays (one row per
        candidate: a few thousand objects for the collector to walk would cost more than
        the read)."""

    @abstractmethod
    async def _top(self, key: bytes, least: int, limit: int | None) -> Rows:
        """(token, count) with count >= least, by count descending then id."""

    @abstractmethod
    async def _unigram_rows(self) -> Rows: ...
    @abstractmethod
    async def _counts(self, key: bytes, tokens: list[int]) -> Rows:
        """(token, count) of those ``tokens`` seen after ``key`` (b"": words, by frequency)."""

    @abstractmethod
    async def _resolve_one(self, word: str) -> int | None: ...
    @abstractmethod
    async def _spellings(self, head: str) -> list[str]:
        """Up to 2,000 frequent words whose folded form starts with ``head``."""

    @abstractmethod
    async def _spell_rows(self, ids: list[int]) -> Rows: ...
    @abstractmethod
    async def _copy_rows(self, grams: list[int], heads: list[bytes], tails: list[bytes]) -> Rows:
        """Bodies of up to ``PER_PROBE`` messages per kind of probe."""

    # ------------------------------------------------------------------ ModelReader

    async def run(self, job: Callable[[ModelReader], Awaitable[T]]) -> T:
        """One request: reads are remembered under the model's version at its start."""
        await self._begin()
        return await job(self)

    async def _begin(self) -> None:
        """Start a request: reads are remembered under the model's current version."""
        row = await self._version_row()
        self._version = None if row is None else (self.ns.id, *row)
        if self._version is not None:
            self._cache.begin(*self._version)

    def foresee(self, ahead: Ahead | None) -> None:
        self._ahead = ahead

    def _remembered(self, *key: Any, last: bool = True) -> Any:
        if self._version is None:
            return _MISSING
        return self._cache.get(self._version, key, last)

    def _remember(self, value: Any, *key: Any) -> None:
        if self._version is not None:
            self._cache.put(self._version, key, value)

    def _vanished(self) -> LookupError:
        """The model changed under this request: read through until the next begin."""
        self._version = None
        return LookupError("candidate vanished while sampling")

    def _remembered_found(self, *key: Any) -> Found | object | None:
        kept: object = self._remembered(*key)
        if not isinstance(kept, bytes):
            return kept  # (None or _MISSING)
        handle, context, pairs = marshal.loads(kept)
        found: Found = Found(handle, context, classes_of_shape(pairs))
        return found

    def _remember_found(self, found: Found | None, *key: Any) -> None:
        """Remember ``found`` as bytes, which the collector never walks. As objects (a
        Found, its context and classes, and the store's tuples in it), the 6,300 a cold
        pass's cache holds were most of what its full passes walked: those stay tracked
        until one, as the collector untracks nested tuples one level per pass."""
        if found is None:
            self._remember(None, *key)
            return
        pairs = tuple((c.count, c.size) for c in found.classes)
        self._remember(marshal.dumps((_context(found), found.context, pairs)), *key)

    async def lookup(self, context: Sequence[int]) -> Found | None:
        context = tuple(context[-self.ns.order :])
        found = self._remembered_found("lookup", context)
        if found is _MISSING:
            found = await self._read_lookup(context)
            self._remember_found(found, "lookup", context)
        assert found is None or isinstance(found, Found)
        return found

    async def _read_lookup(self, context: tuple[int, ...]) -> Found | None:
        """The lookup of ``context``, remembering the contexts read ahead with it.

        Most contexts of a chat model have one candidate (57% of a cold pass's lookups on
        the bench corpus), and a walk through one goes on to the context that candidate
        makes; a backend that reads those in the same round trip saves the walk a trip per
        step. Every context read ahead is a known one, so its lookup is its own rows,
        whatever the asked context backed off to."""
        rows = await self._lookup_rows(
            [pack(context[i:]) for i in range(len(context))], self._ahead
        )
        if not self.reads_ahead:
            return _found(rows)
        by_node = _by_node(rows)
        found = _found(by_node.pop(0, []))
        self._remember_ahead(by_node)
        return found

    def _remember_ahead(self, by_node: dict[int, Rows]) -> None:
        """Remember the contexts read ahead, each under its own lookup (a known context),
        the members drawn ahead, each under its class and place in it, and the lookups
        foreseen to back off, each under the context asked."""
        for _, key, count, offset, token, *_ in by_node.pop(-2, []):
            self._remember(int(token), "at", bytes(key), int(count), int(offset))
        backing_off = by_node.pop(-3, [])
        found: dict[int, Found] = {}
        for node, rows in by_node.items():
            if (linked := _found(rows)) is not None:
                self._remember_found(linked, "lookup", linked.context)
                found[node] = linked
        for _, asked, node, *_ in backing_off:
            if (shorter := found.get(int(node))) is not None:
                self._remember_found(shorter, "lookup", tuple(unpack(bytes(asked))))

    async def _draw(
        self, key: bytes, count: int, skip: list[int], offset: int, whole: bool, start: int = 0
    ) -> list[int]:
        members, rows = await self._draw_rows(key, count, skip, offset, whole, start, self._ahead)
        self._remember_ahead(_by_node(rows))
        return members

    async def _marked_draw(self, found: Found, count: int, skip: list[int], offset: int) -> int:
        """The ``offset``-th member not in ``skip`` of a class too large to read whole,
        read from the nearest mark before it: an index read of at most ``MARK`` members
        and those held apart, where an offset into 100,000 words reads that many."""
        key = _context(found)[0]
        marks = self._remembered("marks", key, count)
        if marks is _MISSING:
            marks = array("q", await self._marks(key, count, MARK))
            self._remember(marks, "marks", key, count)
        assert isinstance(marks, array)
        if not marks:
            raise self._vanished()
        at = min(offset // MARK, len(marks) - 1)
        start = int(marks[at])
        # The held-apart members before the mark do not count towards the offset.
        held = await self.counts_of(found, [t for t in skip if t < start])
        before = at * MARK - sum(1 for c in held.values() if c == count)
        token = await self._draw(key, count, skip, offset - before, False, start)
        if not token:
            raise self._vanished()
        return token[0]

    async def candidate_at(
        self, found: Found, count: int, offset: int, excluding: Sequence[int] = ()
    ) -> int:
        few = _context(found)[1]
        skip = sorted(set(excluding))
        if few is not None:
            members: Any = tuple(t for t, c in few if c == count)
        else:
            members = await self._class_or_token(found, count, skip, offset)
            if isinstance(members, int):
                return members
        assert isinstance(members, tuple | array)
        token = _nth_without(members, skip, offset)
        if token is None:
            raise self._vanished()
        return token

    async def _class_or_token(
        self, found: Found, count: int, skip: list[int], offset: int
    ) -> array[int] | int:
        """The members of a class of a context too large for its lookup, remembered, or
        the drawn token itself where reading them all does not pay (yet).

        What is read whole is the context, if it has at most ``CLASS_READ`` candidates (the
        start of a message, a common word: every class of it is drawn from sooner or
        later, and each class read scans the context), else the class. Either is read one
        member per draw until those reads have cost what reading it whole does (rent or
        buy): a small one at once, a larger one once it is drawn from often."""
        key = _context(found)[0]
        size = next((c.size for c in found.classes if c.count == count), 0)
        if key and found.candidates <= CLASS_READ:
            unit: tuple[Any, ...] = ("context", key)
            n, rent = found.candidates, 1 + found.candidates // RENT  # (only if drawn again)
        else:
            unit, n = ("class", key, count), size
            rent = n // RENT
        whole = self._remembered(*unit, last=bool(skip)) if n <= CLASS_READ else _MISSING
        if whole is not _MISSING:
            assert isinstance(whole, dict | array)
            return whole.get(count, array("q")) if isinstance(whole, dict) else whole
        if not skip:
            at = self._remembered("at", key, count, offset)
            if at is not _MISSING:  # drawn ahead, where the walk was foreseen to go
                assert isinstance(at, int)
                return at
        if n > CLASS_READ:  # (the words said once, when a walk backs off to them)
            return await self._marked_draw(found, count, skip, offset)
        remembered = self._remembered("drawn", *unit[1:]) if rent else 0
        drawn = remembered if isinstance(remembered, int) else 0
        if drawn < rent:
            self._remember(drawn + 1, "drawn", *unit[1:])
            token = await self._draw(key, count, skip, offset, whole=False)
            if not token:
                raise self._vanished()
            return token[0]
        # Compact arrays: no Python object per member for the collector to walk.
        if unit[0] == "context":
            classes = _classes_of(*await self._context_rows(key))
            self._remember(classes, *unit)
            return classes.get(count, array("q"))
        members = array("q", await self._draw(key, count, skip, offset, True))
        self._remember(members, *unit)
        return members

    async def top_candidates(self, found: Found, limit: int | None) -> list[tuple[int, int]]:
        key, few, _ = _context(found)
        if not key:
            return [(int(n), int(c)) for n, c in await self._top(b"", 1, limit)]
        if few is not None:
            ranked = sorted(few, key=lambda tc: (-tc[1], tc[0]))
            return ranked if limit is None else ranked[:limit]
        # Only the classes that hold the first ``limit`` candidates need sorting.
        least, seen = 0, 0
        for cls in found.classes:
            least, seen = cls.count, seen + cls.size
            if limit is not None and seen >= limit:
                break
        return [(int(n), int(c)) for n, c in await self._top(key, least, limit)]

    async def unigram(self) -> Found | None:
        found = self._remembered_found("unigram")
        if found is _MISSING:
            rows = await self._unigram_rows()
            classes = count_classes((int(c), int(n)) for c, n in rows)
            found = Found((b"", None, 0), (), classes) if classes else None
            self._remember_found(found, "unigram")
        assert found is None or isinstance(found, Found)
        return found

    async def count_of(self, found: Found, token: int) -> int:
        return (await self.counts_of(found, [token])).get(token, 0)

    async def counts_of(self, found: Found, tokens: Sequence[int]) -> dict[int, int]:
        key, few, end = _context(found)
        wanted = sorted(set(tokens) - ({EOS} if not key else set()))
        if not wanted:
            return {}  # (order 0 holds words only, never the end marker)
        if few is not None and key:
            return {t: c for t, c in few if t in wanted and c > 0}
        ended = {EOS: end} if EOS in wanted and end else {}
        wanted = [t for t in wanted if t != EOS]
        if not wanted:
            return ended  # <end> alone (min_words masks it): known from the lookup
        asked = ("counts", key, tuple(wanted))
        counts = self._remembered(*asked)
        if counts is _MISSING:
            rows = await self._counts(key, wanted)
            counts = {int(t): int(c) for t, c in rows if int(c) > 0}
            self._remember(counts, *asked)
        assert isinstance(counts, dict)
        return {**counts, **ended}

    async def resolve(self, words: Sequence[str]) -> list[int]:
        """The exact spelling, else the most frequent one ignoring case."""
        out: list[int] = []
        for word in words:
            token = await self._resolve_one(word)
            if token is None:
                raise UnknownStart(words, await self.suggest(word))
            out.append(token)
        return out

    async def suggest(self, word: str, n: int = 5) -> list[str]:
        """Known words spelled like ``word``: frequent words sharing its first letter."""
        folded = word.casefold()
        by_fold: dict[str, str] = {}
        for token in await self._spellings(folded[:1]):
            by_fold.setdefault(token.casefold(), token)
        close = difflib.get_close_matches(folded, list(by_fold), n=n, cutoff=0.6)
        return [by_fold[c] for c in close]

    async def spell(self, tokens: Sequence[int]) -> list[str]:
        names = {BOS: START_LABEL, EOS: END_LABEL}
        rows = await self._spell_rows(sorted({t for t in tokens if t not in names}))
        names.update((int(i), str(t)) for i, t in rows)
        return [names.get(t, "?") for t in tokens]

    async def copy_of(self, tokens: Sequence[int], at_least: int) -> Copy:
        """One round trip reading at most a few hundred candidate messages, whatever the
        corpus: those :func:`bot.core.model.copy_probes` points to through the anchors and the
        indexes on each message's first and last 4 tokens."""
        if not tokens:
            return NO_COPY
        key = ("copy", tuple(tokens), at_least)  # a redraw at a low T often repeats itself
        copy = self._remembered(*key)
        if copy is _MISSING:
            probes = copy_probes(tokens, at_least)
            rows = await self._copy_rows(
                sorted({anchor(w) for w in probes.windows}),
                sorted(probes.heads),
                sorted(probes.tails),
            )
            copy = copy_in(tokens, (bytes(r[0]) for r in rows), at_least)
            self._remember(copy, *key)
        assert isinstance(copy, Copy)
        return copy
