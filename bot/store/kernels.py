"""The batch kernels both backends share: counting a batch's transitions, moving count
classes, anchors for the originality check, and decoding stored bodies into a model.

Pure computation (numpy), no SQL: a backend hands these its rows and writes their output,
so SQLite and PostgreSQL hold exactly the same counts for the same messages.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.core.model import BOS, EOS, MemoryModel, anchor_windows, unpack
from bot.store.base import Incoming

__all__ = [
    "BUILDER",
    "Grams",
    "anchor",
    "anchor_rows",
    "anchors",
    "chunks",
    "class_moves",
    "decode_bodies",
    "grams",
    "memory_model",
    "word_class_moves",
]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def anchor(window: bytes) -> int:
    """An anchor's key: a 31-bit hash of a packed window (a collision costs one check)."""
    return zlib.crc32(window) >> 1


def anchors(body: bytes) -> list[int]:
    """Keys of every fifth ANCHOR-token window of a packed message."""
    return [anchor(w) for w in anchor_windows(body)]


def class_moves(group: Any, old: Any, new: Any) -> tuple[Any, Any]:
    """How the count classes change when transitions go from ``old`` to ``new`` counts:
    (context << 32 | count, change in size) per class that changes, in key order."""
    import numpy as np

    leave, join = np.flatnonzero(old > 0), np.flatnonzero(new > 0)
    key = np.empty(len(leave) + len(join), dtype=np.int64)
    key[: len(leave)] = (group[leave].astype(np.int64) << 32) | old[leave]
    key[len(leave) :] = (group[join].astype(np.int64) << 32) | new[join]
    step = np.ones(len(key), dtype=np.int8)
    step[: len(leave)] = -1
    del leave, join
    order = np.argsort(key, kind="stable")
    key, step = key[order], step[order]
    del order
    if not len(key):
        return key, key
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    sizes = np.add.reduceat(step, starts, dtype=np.int64)
    changed = sizes != 0
    return key[starts][changed], sizes[changed]


def word_class_moves(moves: Iterable[tuple[int, int]]) -> dict[int, int]:
    """How the word-frequency classes (order 0, kept under the empty context) change when
    words' counts go from old to new: change in size per count, for the counts that change.
    A count of 0 is no class (a reserved or forgotten word)."""
    sizes: Counter[int] = Counter()
    for old, new in moves:
        if old != new:
            sizes[old] -= 1
            sizes[new] += 1
    return {c: n for c, n in sorted(sizes.items()) if c > 0 and n}


def anchor_rows(bodies: dict[int, bytes]) -> list[int]:
    """(anchor, message id) of every message, laid end to end in key order (neighbouring
    B-tree pages)."""
    import numpy as np

    grams = [(g, mid) for mid, body in bodies.items() for g in anchors(body)]
    if not grams:
        return []
    pairs = np.array(grams, dtype=np.int64)
    flat: list[int] = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))].ravel().tolist()
    return flat


#: Builds selections one at a time: the work is Python, holding the GIL, so each thread
#: building one at once takes a share of it from the event loop (three at once held up
#: an unrelated command for 2 s); queued, they leave the loop half of it.
BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="markov-selection")


def decode_bodies(rows: Iterable[Any]) -> tuple[list[list[int]], str]:
    """Stored message bodies as token ids, newest first, and a JSON list of their words."""
    sequences = [unpack(bytes(r[0])) for r in rows]
    return sequences, json.dumps(sorted({t for s in sequences for t in s}))


def memory_model(order: int, sequences: list[list[int]], spelled: Iterable[Any]) -> MemoryModel:
    """A model of ``sequences`` (newest first) learned oldest first, in words."""
    names = {int(i): str(t) for i, t in spelled}
    model = MemoryModel(order)
    model.learn_all([names.get(t, "?") for t in seq] for seq in reversed(sequences))
    return model


@dataclass(slots=True)
class Grams:
    """A batch's transitions whose contexts have ``k`` tokens, in primary key order."""

    k: int
    contexts: Any  # (contexts, k) uint32 array: the distinct contexts, in order
    group: Any  # per transition: the index of its context in ``contexts``
    next: Any  # per transition: the next token
    n: Any  # per transition: the signed count to add


def grams(bodies: Sequence[bytes], order: int, sign: int) -> list[Grams]:
    """:func:`contribution` of packed messages, sign applied: one :class:`Grams` per
    context length, in the order of the ``transitions`` primary key.

    The same counts as ``contribution`` (``Store.check`` compares the stored counts with
    it), computed with numpy: the messages are laid end to end between markers, and the
    windows of k + 1 tokens whose context holds no end marker are sorted and counted. The
    sort is SQLite's key order (memcmp of the little-endian packed context, then next), so
    a batch walks the B-trees in order instead of jumping around.
    """
    import numpy as np

    lengths = np.fromiter(map(len, bodies), dtype=np.int64, count=len(bodies)) // 4
    size = int(lengths.sum()) + 2 * len(bodies)
    if size >= 2**30:
        raise ValueError("batch too large")
    bos = np.cumsum(lengths + 2) - (lengths + 2)
    eos = bos + lengths + 1
    body = np.ones(size, dtype=bool)
    body[bos] = False
    body[eos] = False
    stream = np.empty(size, dtype=np.uint32)
    stream[bos] = BOS
    stream[eos] = EOS
    stream[body] = np.frombuffer(b"".join(bodies), dtype="<u4")
    del body
    # memcmp order of a little-endian uint32 is the numeric order of its byte-swapped value
    swapped = stream.byteswap()
    out = []
    for k in range(1, order + 1):
        n = size - k
        keep = stream[:n] != EOS
        for i in range(1, k):
            keep &= stream[i : i + n] != EOS
        at = np.flatnonzero(keep).astype(np.int32)  # size < 2**30: int32 halves the memory
        del keep
        # np.lexsort sorts by its last key first: the context's first token, ..., next
        keys = [stream[at + k], *(swapped[at + i] for i in range(k - 1, -1, -1))]
        at = at[np.lexsort(keys)]
        del keys
        columns = [stream[at + i] for i in range(k + 1)]
        new_context = np.ones(len(at), dtype=bool)
        new_row = np.ones(len(at), dtype=bool)
        if len(at) > 1:
            differs = columns[0][1:] != columns[0][:-1]
            for column in columns[1:k]:
                differs |= column[1:] != column[:-1]
            new_context[1:] = differs
            new_row[1:] = differs | (columns[k][1:] != columns[k][:-1])
        first = np.flatnonzero(new_row)
        starts = np.flatnonzero(new_context)
        out.append(
            Grams(
                k=k,
                contexts=np.stack([c[starts] for c in columns[:k]], axis=1).astype("<u4"),
                group=np.cumsum(new_context, dtype=np.int32)[first] - 1,
                next=columns[k][first],
                n=(np.diff(np.append(first, len(at))) * sign).astype(np.int32),
            )
        )
        del at, columns, new_context, new_row, first, starts
    return out


def triage(batch: Sequence[Incoming], known: set[int]) -> tuple[dict[int, Incoming], int, int]:
    """A batch's new messages by id (first occurrence, in order), and how many were already
    stored (or repeated within the batch) and how many had no words."""
    fresh: dict[int, Incoming] = {}
    empty = duplicates = 0
    for m in batch:
        if m.id in known or m.id in fresh:
            duplicates += 1
        elif not m.tokens:
            empty += 1
        else:
            fresh[m.id] = m
    return fresh, duplicates, empty
