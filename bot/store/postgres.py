"""The PostgreSQL backend of :class:`bot.store.base.Store`, for bots that outgrow one machine.

Several bot processes (shards) may share one database. What keeps them from stepping on
each other:

* every write to a namespace takes a transaction-scoped advisory lock on it, so two
  processes learning the same message (a catch-up overlapping live events) see each
  other's commits: the second finds the id stored and counts nothing (idempotent by id);
* a purge is first recorded, then done in one transaction; a process that starts finds
  any recorded purge and finishes it;
* migrations run under an advisory lock, once, whoever starts first;
* :meth:`PostgresStore.exclusive` is a session advisory lock: a bundled corpus is built
  by one process while the others wait, then find it complete.

Batches go to the server as arrays (``unnest``) or COPY, one statement per table and
context length, not a statement per row; the counting itself is the shared numpy kernels'.
Under the namespace's lock a batch can ask which of its contexts and transitions are
stored, so rows that exist are updated and new ones copied in.

Generation is one read per step, each a round trip; a lookup therefore also reads the
contexts the walk can reach next while they have few candidates (most contexts of a chat
model have one), which the reader remembers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from itertools import chain, repeat
from typing import Any, TypeVar

import asyncpg

from bot.core.model import (
    DEFAULT_ORDER,
    MAX_ORDER,
    Ahead,
    MemoryModel,
    ModelReader,
    pack,
    unpack,
)
from bot.store.base import (
    AfterLearning,
    Incoming,
    LearnResult,
    Namespace,
    Statement,
    Stats,
    Store,
    StoredMessage,
    Transitions,
    redacted,
)
from bot.store.errors import StoreError
from bot.store.guilds import SAVE_BACKFILL, backfill_row
from bot.store.kernels import (
    BUILDER,
    Grams,
    anchor_rows,
    anchors,
    chunks,
    class_moves,
    decode_bodies,
    grams,
    memory_model,
    triage,
    word_class_moves,
)
from bot.store.pg_schema import MIGRATIONS, SCHEMA_VERSION
from bot.store.reading import (
    NEW_VERSION,
    PER_PROBE,
    SMALL,
    Change,
    ReadCache,
    StoredModel,
)

__all__ = ["PostgresModel", "PostgresStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_PURGE, _DROP = 1, 2
_SLICE = 20_000  # transitions per statement
_POOL_MAX = 8
_CONNECT_TIMEOUT = 10.0
# Advisory lock keys: a namespace's writes, migrations, and named exclusive sections.
_NS_LOCK = 0x6D6B << 40
_MIGRATE_LOCK = 0x6D6B << 40 | 0xFFFFFFFF
_NAMED_LOCK = 0x6D6C << 40

# Every read is by key: a bitmap of index entries only pays for scanning much of a table.
# Right after a bulk import (no statistics yet) the planner chose one for a context's first
# candidates (6,000 entries, then a sort) over the index's own order (65 entries).
# And no JIT compilation: a foreseen walk's query (a recursion of small index probes) is
# estimated to cost millions, and compiling it took 2 s for a query that runs in 4 ms.
_SESSION = {"enable_bitmapscan": "off", "jit": "off"}
_BY_KEY = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; "
    "SET LOCAL enable_mergejoin = off"
)

# Vocabulary rows are read by id (the primary key) with "ns + 0 = $1": a bare "ns = $1"
# lets a table without statistics yet (just imported) be planned as a bitmap of every word
# of the namespace ANDed with the ids (0.6 ms instead of 0.03 for a generation's words).

# Slices of a blob of packed contexts, one per array element: $2 the blob, $3 its width.
_CTX = "substring($2::bytea FROM ((b.i - 1) * $3::int + 1)::int FOR $3::int)"
# Stored transitions of one context length: $4 the next tokens, $5 the counts to add.
_UPDATE_COUNTS = (
    "UPDATE transitions t SET count = t.count + b.n FROM unnest($4::bigint[], $5::bigint[]) "
    f"WITH ORDINALITY AS b(next, n, i) WHERE t.ns = $1 AND t.ctx = {_CTX} AND t.next = b.next"
)
_DELETE_COUNTS = (
    "DELETE FROM transitions t USING unnest($4::bigint[]) WITH ORDINALITY AS b(next, i) "
    f"WHERE t.ns = $1 AND t.ctx = {_CTX} AND t.next = b.next"
)

#: Contexts read with a lookup's own: those a walk can reach from it next, while each has
#: few candidates (at most ``_FAN``), as many as ``_AHEAD`` in all.
_AHEAD, _FAN = 24, 3


def _le4(token: str) -> str:
    """A token as the 4 little-endian bytes of a packed context (bot.core.model.pack)."""
    return (
        f"substring(int8send((({token} & 255) << 24) | ((({token} >> 8) & 255) << 16) "
        f"| ((({token} >> 16) & 255) << 8) | (({token} >> 24) & 255)) FROM 5)"
    )


def _reading_ahead(best: str, first: str = "", extra: str = "") -> str:
    """The rows of bot.store.reading.StoredModel._lookup_rows for the context ``best``
    yields and the contexts a walk can reach from it.

    From the context the CTE ``best`` yields: the contexts its candidates make ($5: the
    bytes of a whole context) when it has fewer than $6 of them, and theirs in turn, each
    context with a budget ($4 for the first) that its candidates share. After <end> (2),
    the only candidate of a context, a walk told to go on (min_words) backs off: its next
    context is the same less its first token. The classes of each context (OFFSET 0: one
    index probe per context, never a hash of the namespace's classes) and its first $2
    candidates, numbered by context from 0; ``first`` rows before them, ``extra`` columns
    after theirs."""
    return f"""
WITH RECURSIVE {best}, ahead(depth, ctx, budget) AS (
    SELECT 0, ctx, $4::int FROM best
    UNION ALL
    SELECT h.depth + 1,
        CASE WHEN o.next = 2 THEN substring(h.ctx FROM 5) ELSE
        substring(h.ctx || {_le4("o.next")} FROM greatest(1, octet_length(h.ctx) + 5 - $5::int))
        END,
        ((h.budget - 1) / o.n)::int
    FROM ahead h CROSS JOIN LATERAL (
        SELECT s.next, count(*) OVER () AS n FROM (
            SELECT next FROM transitions t WHERE t.ns = $1 AND t.ctx = h.ctx
            ORDER BY next LIMIT $6::int
        ) s
    ) o
    WHERE o.n < $6::int AND o.n < h.budget
        AND (o.next <> 2 OR o.n = 1 AND octet_length(h.ctx) > 4)
), nodes AS (
    SELECT row_number() OVER (ORDER BY depth) - 1 AS node, ctx FROM ahead
)
{first}
{_node_rows(extra)}"""


def _node_rows(extra: str = "") -> str:
    """Each context of the CTE ``nodes`` (node, ctx) as the rows of a lookup: its classes
    (OFFSET 0: one index probe per context, never a hash of the namespace's classes) and
    its candidates if fewer than $2, else its first (<end>, if it is one); ``extra``
    columns after theirs."""
    return f"""SELECT n.node, c.ctx, c.count, c.size{extra} FROM nodes n CROSS JOIN LATERAL (
    SELECT ctx, count, size FROM classes WHERE ns = $1 AND ctx = n.ctx OFFSET 0
) c
UNION ALL
SELECT n.node, NULL::bytea, t.next, t.count{extra} FROM nodes n CROSS JOIN LATERAL (
    SELECT next, count FROM transitions WHERE ns = $1 AND ctx = n.ctx ORDER BY next
    LIMIT CASE WHEN (SELECT sum(size) FROM classes WHERE ns = $1 AND ctx = n.ctx) < $2
        THEN $2 ELSE 1 END
) t"""


# A lookup: the longest known of the keys $3, each suffix probed on its own (an index
# lookup whatever the statistics say).
_BEST = """best AS (
    SELECT k.ctx, ($3::bytea[])[1] AS hist FROM unnest($3::bytea[]) AS k(ctx)
    WHERE EXISTS (SELECT 1 FROM classes c WHERE c.ns = $1 AND c.ctx = k.ctx)
    ORDER BY octet_length(k.ctx) DESC LIMIT 1
)"""
_LOOKUP = _reading_ahead(_BEST)

# A lookup and the path a walk will take from it (bot.core.model.Ahead): from each
# context, the candidate the walk's next uniform ($5, from the step-th on) lands on at
# temperature $6, as bot.core.sampling.draw_at does (classes by count descending, a
# member's weight e^((ln count - ln max) / T), <end> held apart for the first $7 draws;
# with only <end> left, the same draw from the context one token shorter, down to the
# word frequencies under b""), and the longest known suffix of what the walk has said
# then. A draw whose member costs more to find than the trip it saves is not foreseen:
# from a context of more than $8 candidates (a scan of its candidates), or beyond the
# (4 × $8)-th member of a class of words (an index scan). The rows: each draw from a
# context of more than $2 - 1 candidates (which its lookup does not return whole) as
# (-2, ctx, count, offset in the class, token); each context the walk will have said that
# backs off to a shorter one as (-3, context, node of the shorter one, 0); then the
# lookup rows of every context on the path. Only where to read is guessed: a walk that
# goes elsewhere (a knob, a rounding) reads as it would have.


def _foreseeing(best: str, first: str = "", extra: str = "") -> str:
    """The rows of _FORESEEN from the context (ctx) and what the walk said (hist) the CTE
    ``best`` yields; ``first`` rows before them, ``extra`` columns after theirs."""
    return f"""
WITH RECURSIVE {best}, path(hop, step, hist, ctx, came, count, at, token, n, drawn) AS (
    SELECT 0, 1, hist, ctx, NULL::bytea, NULL::bigint, NULL::bigint, NULL::bigint,
        NULL::bigint, false
    FROM best
    UNION ALL
    SELECT p.hop + 1, s.step, s.hist, s.ctx, p.ctx, s.count, s.at, s.token, s.n, s.drawn
    FROM path p CROSS JOIN LATERAL (
        SELECT p.step + 1 AS step, h.hist, b.ctx, d.count, d.at, m.token, d.n, true AS drawn
        FROM (
            SELECT k.count, k.n,
                least(k.size - 1, floor((k.u * k.total - k.cum + k.w) / k.m))::bigint + k.shift
                    AS at
            FROM (
                SELECT c.count, c.size - c.shift AS size, c.shift, c.m, ($5::float8[])[p.step] AS u,
                    (c.size - c.shift) * c.m AS w,
                    sum((c.size - c.shift) * c.m) OVER (ORDER BY c.count DESC) AS cum,
                    sum((c.size - c.shift) * c.m) OVER () AS total,
                    (sum(c.size) OVER ())::bigint AS n
                FROM (
                    SELECT c.count, c.size,
                        CASE WHEN p.step <= $7::int AND c.count = e.n THEN 1 ELSE 0 END AS shift,
                        exp((ln(c.count) - ln(max(c.count) OVER ())) / $6::float8) AS m
                    FROM classes c CROSS JOIN LATERAL (SELECT coalesce((
                        SELECT t.count FROM transitions t
                        WHERE t.ns = $1 AND t.ctx = p.ctx AND t.next = 2
                    ), 0) AS n) e
                    WHERE c.ns = $1 AND c.ctx = p.ctx
                ) c
            ) k
            WHERE k.size > 0 AND k.cum > k.u * k.total
            ORDER BY k.count DESC LIMIT 1
        ) d CROSS JOIN LATERAL (
            SELECT CASE WHEN p.ctx = ''::bytea THEN CASE WHEN d.at <= 4 * $8::int THEN (
                SELECT id FROM vocab WHERE ns = $1 AND count = d.count
                ORDER BY id OFFSET d.at LIMIT 1
            ) END WHEN d.n <= $8::int THEN (
                SELECT next FROM transitions WHERE ns = $1 AND ctx = p.ctx AND count = d.count
                ORDER BY next OFFSET d.at LIMIT 1
            ) END AS token OFFSET 0  -- (OFFSET 0: each subquery runs once, not per use)
        ) m CROSS JOIN LATERAL (
            SELECT substring(p.hist || {_le4("m.token")}
                FROM greatest(1, octet_length(p.hist) + 5 - $4::int)) AS hist OFFSET 0
        ) h CROSS JOIN LATERAL (
            SELECT x.ctx FROM generate_series(0, octet_length(h.hist) / 4 - 1) AS g(i)
            CROSS JOIN LATERAL (SELECT substring(h.hist FROM 4 * g.i + 1) AS ctx) x
            CROSS JOIN LATERAL (  -- (LIMIT: an index probe, never a hash of all classes)
                SELECT 1 FROM classes c WHERE c.ns = $1 AND c.ctx = x.ctx LIMIT 1
            ) known
            ORDER BY g.i LIMIT 1
        ) b
        WHERE m.token <> 2
        UNION ALL
        SELECT p.step, p.hist, substring(p.ctx FROM 5), NULL, NULL, NULL, NULL, false
        WHERE p.step <= $7::int AND octet_length(p.ctx) >= 4 AND NOT EXISTS (
            SELECT 1 FROM transitions t WHERE t.ns = $1 AND t.ctx = p.ctx AND t.next <> 2
        )
    ) s
    WHERE s.ctx IS NOT NULL
        AND p.step <= cardinality($5::float8[]) AND p.hop < 2 * cardinality($5::float8[])
), nodes AS (
    SELECT row_number() OVER (ORDER BY hop) - 1 AS node, ctx
    FROM (SELECT DISTINCT ON (ctx) hop, ctx FROM path WHERE ctx <> ''::bytea
        ORDER BY ctx, hop) d
)
{first}
SELECT -2, came, count, at, token{extra} FROM path WHERE token IS NOT NULL AND n >= $2
UNION ALL
SELECT -3, p.hist, n.node, 0, NULL::bigint{extra} FROM path p JOIN nodes n ON n.ctx = p.ctx
WHERE p.drawn AND p.hist <> p.ctx
UNION ALL
{_node_rows(", NULL::bigint" + extra)}
"""


_FORESEEN = _foreseeing(_BEST)
#: The most candidates a foreseen draw scans (see _FORESEEN).
_FORESEE_AT_MOST = 1024


def _drawing(count: str, skip: str, offset: str, start: str, width: str) -> str:
    """The CTEs of a draw from the class of count ``count`` of context $3, its
    ``offset``-th member from id ``start`` on, not counting those in ``skip`` (``pick``),
    and the context that member makes (``best``: ``width`` the bytes of a whole context), a
    known one: a learned word makes one."""
    return f"""pick AS (
    SELECT next FROM transitions
    WHERE ns = $1 AND ctx = $3::bytea AND count = {count} AND next <> ALL({skip}::bigint[])
        AND next >= {start}
    ORDER BY next OFFSET {offset} LIMIT 1
), made AS (
    SELECT substring($3 || {_le4("p.next")} FROM greatest(1, octet_length($3) + 5 - {width}::int))
        AS ctx
    FROM pick p WHERE p.next <> 2
), best AS (
    SELECT ctx, ctx AS hist FROM made
)"""


def _drawn_first(count: str, whole: str, extra: str = "") -> str:
    """The first row of a draw (see _drawing): (-1, NULL, the member, 0, ``extra``, and
    the whole class as an array if the parameter ``whole``)."""
    return f"""SELECT -1, NULL::bytea, (SELECT next FROM pick), 0{extra}, CASE WHEN {whole}::bool
THEN (
    SELECT array_agg(next ORDER BY next) FROM transitions
    WHERE ns = $1 AND ctx = $3 AND count = {count}
) END
UNION ALL"""


# A draw ($7 the count, $8 held apart, $9 the offset, $10 whole, $11 the first id) and
# the lookup of the context it makes, where the walk goes next, read ahead as a lookup is.
_DRAW = _reading_ahead(
    _drawing("$7", "$8", "$9", "$11", "$5"),
    first=_drawn_first("$7", "$10"),
    extra=", NULL::bigint[]",
)
# A draw ($9 the count, $10 held apart, $11 the offset, $12 whole, $13 the first id), then
# the path a walk foreseen (bot.core.model.Ahead) takes from where it goes: _FORESEEN's
# rows from the context the drawn member makes.
_FORESEEN_DRAW = _foreseeing(
    _drawing("$9", "$10", "$11", "$13", "$4"),
    first=_drawn_first("$9", "$12", ", NULL::bigint"),
    extra=", NULL::bigint[]",
)


@lru_cache(maxsize=256)
def _dollars(sql: str) -> str:
    """``?`` placeholders (the settings' shared SQL) as PostgreSQL's ``$1``, ``$2``..."""
    count = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def _parts(indices: Any) -> Iterator[Any]:
    """Row indices (a numpy array) in slices of ``_SLICE``: one statement each."""
    return (indices[i : i + _SLICE] for i in range(0, len(indices), _SLICE))


def _split(blob: bytes, width: int) -> list[bytes]:
    """A blob of packed contexts as one bytes per context (COPY's rows)."""
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def _named_key(name: str) -> int:
    return _NAMED_LOCK | zlib.crc32(name.encode())


class PostgresStore(Store):
    """A PostgreSQL database. Open with :func:`bot.store.open_store`, close with :meth:`close`."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.where = redacted(url)
        self._pool = pool
        self.read_cache = ReadCache()  # reads remembered across requests

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = _POOL_MAX) -> PostgresStore:
        """Connect (a pool of up to ``pool_size``), migrate, and finish recorded purges.

        A server that cannot be reached or refuses us raises :class:`StoreError` with the
        one line to show whoever runs the bot."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=_CONNECT_TIMEOUT,
                reset=_keep,
                init=_prepare_reads,
                server_settings=_SESSION,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            raise StoreError(
                f"cannot reach the PostgreSQL database {redacted(url)} ({_reason(e)}): start "
                "it, or check MARKOV_DB (or --db): postgresql://user[:password]@host[:port]/db."
            ) from e
        except asyncpg.InterfaceError as e:
            raise StoreError(f"cannot use the PostgreSQL address {redacted(url)}: {e}") from e
        store = cls(url, pool)
        try:
            await store._migrate()
            async with pool.acquire() as conn:
                await _prepare_reads(conn)
            await store._resume_purges()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS markov_schema (version INTEGER NOT NULL)"
                )
                version = await conn.fetchval("SELECT max(version) FROM markov_schema") or 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the database {self.where} was written by a newer version of "
                        f"markov-bot (schema {version}; this one knows {SCHEMA_VERSION}): "
                        "upgrade markov-bot, or set MARKOV_DB (or --db) to another database."
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    log.info("migrating the PostgreSQL schema to version %d", target)
                    async with conn.transaction():
                        await conn.execute(MIGRATIONS[target - 1])
                        await conn.execute("INSERT INTO markov_schema VALUES ($1)", target)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _writing(self, ns_id: int | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A transaction; with ``ns_id``, holding that namespace's write lock until it ends."""
        async with self._pool.acquire() as conn, conn.transaction():
            if ns_id is not None:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _NS_LOCK | ns_id)
                # Every statement of a model's write goes by key. A table that grew within
                # one import has no statistics yet, and the planner then chose to scan it
                # once per batch row (minutes); by key it is milliseconds.
                await conn.execute(_BY_KEY)
            yield conn

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _named_key(name))
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _named_key(name))

    # ------------------------------------------------------------------ namespaces

    async def namespace(self, name: str, order: int = DEFAULT_ORDER) -> Namespace:
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be 1 to {MAX_ORDER}")
        async with self._writing() as conn:
            await conn.execute(
                "INSERT INTO namespaces (name, ord, created) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO NOTHING",
                name,
                order,
                time.time(),
            )
            row = await conn.fetchrow("SELECT id, ord FROM namespaces WHERE name = $1", name)
        assert row is not None
        return Namespace(int(row[0]), name, int(row[1]))

    async def namespaces(self) -> list[Namespace]:
        rows = await self._pool.fetch("SELECT id, name, ord FROM namespaces ORDER BY id")
        return [Namespace(int(i), str(n), int(o)) for i, n, o in rows]

    def reader(self, ns: Namespace) -> PostgresModel:
        return PostgresModel(self._pool, ns, self.read_cache)

    # ------------------------------------------------------------------ learning

    async def learn(
        self, ns: Namespace, batch: Sequence[Incoming], *, also: AfterLearning | None = None
    ) -> LearnResult:
        if not batch and also is None:
            return LearnResult(0, 0, 0, 0)
        changes: list[Change] = []
        async with self._writing(ns.id) as conn:
            result = LearnResult(0, 0, 0, 0)
            if batch:
                result = await self._learn(conn, ns, batch, changes)
            if also is not None:
                await conn.execute(_dollars(SAVE_BACKFILL), *backfill_row(also(result)))
        self.read_cache.advance(*changes)
        return result

    async def _learn(
        self,
        conn: asyncpg.Connection,
        ns: Namespace,
        batch: Sequence[Incoming],
        changes: list[Change],
    ) -> LearnResult:
        rows = await conn.fetch(
            "SELECT id FROM messages WHERE ns = $1 AND id = ANY($2::bigint[])",
            ns.id,
            [m.id for m in batch],
        )
        known = {int(r[0]) for r in rows}
        fresh, duplicates, empty = triage(batch, known)
        if not fresh:
            return LearnResult(0, duplicates, empty, 0)
        # First-seen order: ids break ties between equally frequent candidates.
        words = Counter(chain.from_iterable(m.tokens for m in fresh.values()))
        # What the model has yet: nothing, in a corpus built, a store migrated, a first
        # import, and then there is nothing to look for.
        has_words, has_transitions = await conn.fetchrow(_HELD, ns.id)
        ids = await self._intern(conn, ns, words, has_words)
        bodies = {mid: pack(list(map(ids.__getitem__, m.tokens))) for mid, m in fresh.items()}
        ordered = sorted(fresh.items())
        # The batch's anchors and transitions are counted in a thread while the server
        # copies the messages in: the two overlap, and numpy stays off the event loop.
        counted = asyncio.get_running_loop().run_in_executor(None, _counted, bodies, ns.order)
        try:
            # New by id under the namespace's lock: copied in, as the new transitions are.
            await conn.copy_records_to_table(
                "messages",
                records=[
                    (ns.id, mid, m.author, m.channel, m.created, bodies[mid], m.thread)
                    for mid, m in ordered
                ],
                columns=("ns", "id", "author", "channel", "created", "tokens", "thread"),
            )
        except BaseException:
            counted.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        flat, transitions = await counted
        await conn.execute(
            "INSERT INTO anchors (ns, gram, msg) SELECT $1, * FROM "
            "unnest($2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
            ns.id,
            flat[0::2],
            flat[1::2],
        )
        changes.append(
            await self._apply(conn, ns, list(bodies.values()), +1, transitions, has_transitions)
        )
        return LearnResult(len(fresh), duplicates, empty, sum(map(len, bodies.values())) // 4)

    @staticmethod
    async def _intern(
        conn: asyncpg.Connection, ns: Namespace, words: Counter[str], has_words: bool = True
    ) -> dict[str, int]:
        """Vocabulary ids of ``words``, numbering new ones in the Counter's order, with
        their counts added. Under the namespace's lock, so the words the model has are
        the ones just read: their counts move in place, and the new words are copied in
        with ids taken from the sequence in ascending order (COPY: a third of the time of
        an INSERT whose every row probes for a conflict). Not ``has_words``: the model has
        none, so none is looked for."""
        ids: dict[str, int] = {}
        moves: list[tuple[int, int]] = []
        if has_words:
            rows = await conn.fetch(
                "SELECT token, id, count FROM vocab WHERE ns = $1 AND token = ANY($2::text[])",
                ns.id,
                list(words),
            )
            for token, i, count in rows:
                ids[token] = int(i)
                moves.append((int(count), int(count) + words[token]))
            if grown := [(ids[t], words[t]) for t in ids if words[t]]:
                await conn.execute(
                    "UPDATE vocab SET count = vocab.count + b.n "
                    "FROM unnest($1::bigint[], $2::bigint[]) AS b(id, n) WHERE vocab.id = b.id",
                    [i for i, _ in grown],
                    [n for _, n in grown],
                )
        new = [t for t in words if t not in ids]
        if new:
            numbers = await conn.fetch(_NEW_IDS, len(new))
            ids.update(zip(new, sorted(int(r[0]) for r in numbers), strict=True))
            await conn.copy_records_to_table(
                "vocab",
                records=[(ids[t], ns.id, t, t.casefold(), words[t]) for t in new],
                columns=("id", "ns", "token", "folded", "count"),
            )
            moves.extend((0, words[t]) for t in new)
        await _move_word_classes(conn, ns, moves)
        return ids

    async def _apply(
        self,
        conn: asyncpg.Connection,
        ns: Namespace,
        bodies: Sequence[bytes],
        sign: int,
        batch: list[Grams] | None = None,
        has_transitions: bool = True,
    ) -> Change:
        """Add (sign=+1) or remove (sign=-1) the transition counts of packed messages, and
        move the count classes: the same steps as the SQLite backend's ``_apply``.
        ``batch``: their :func:`grams`, if already counted; not ``has_transitions``: the
        model has none, so no stored context is looked for."""
        import numpy as np

        version = await conn.fetchval(_dollars(NEW_VERSION), ns.id)  # remembered reads: stale
        if batch is None:
            batch = grams(bodies, ns.order, sign)
        for g in batch:
            width, size = 4 * g.k, len(g.next)
            # Forgetting touches stored contexts only; learning reads the old counts of the
            # stored ones (a context new to the model has none: most, in a fresh import).
            stored = np.ones(len(g.contexts), dtype=bool)
            if not has_transitions:
                stored[:] = False
            elif sign > 0:
                stored = await self._stored_contexts(conn, ns, g)
            known = np.flatnonzero(stored[g.group])
            old = np.zeros(size, dtype=np.int64)
            for part in _parts(known):
                rows = await conn.fetch(
                    f"SELECT b.i, t.count FROM unnest($4::bigint[]) WITH ORDINALITY AS b(next, i) "
                    f"JOIN transitions t ON t.ns = $1 AND t.ctx = {_CTX} AND t.next = b.next",
                    ns.id,
                    g.contexts[g.group[part]].tobytes(),
                    width,
                    g.next[part].tolist(),
                )
                if rows:
                    at = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                    old[part[at - 1]] = np.fromiter((r[1] for r in rows), np.int64, len(rows))
            new = old + g.n
            # The namespace's lock is held, so the counts just read are the stored ones: a
            # row that exists is updated (deleted once emptied), and the new ones are copied
            # in (COPY: no ON CONFLICT probing the index a second time, no executor per row).
            for sql, where in (
                (_UPDATE_COUNTS, (old > 0) & (new > 0)),
                (None, (old <= 0) & (new > 0)),
                (_DELETE_COUNTS, (old > 0) & (new <= 0)),
            ):
                for part in _parts(np.flatnonzero(where)):
                    contexts, nexts = g.contexts[g.group[part]].tobytes(), g.next[part].tolist()
                    if sql is None:
                        rows = zip(
                            repeat(ns.id), _split(contexts, width), nexts, g.n[part].tolist()
                        )
                        await conn.copy_records_to_table(
                            "transitions", records=rows, columns=("ns", "ctx", "next", "count")
                        )
                    elif sql is _UPDATE_COUNTS:
                        await conn.execute(sql, ns.id, contexts, width, nexts, g.n[part].tolist())
                    else:
                        await conn.execute(sql, ns.id, contexts, width, nexts)
            moves, sizes = class_moves(g.group, old, new)
            del old, new
            if sign > 0:
                # A context that had no class gets only new ones: copied in.
                fresh = ~stored[moves >> 32]
                part = moves[fresh]
                if len(part):
                    await conn.copy_records_to_table(
                        "classes",
                        records=zip(
                            repeat(ns.id),
                            _split(g.contexts[part >> 32].tobytes(), width),
                            (part & 0xFFFFFFFF).tolist(),
                            sizes[fresh].tolist(),
                        ),
                        columns=("ns", "ctx", "count", "size"),
                    )
                moves, sizes = moves[~fresh], sizes[~fresh]
            for i in range(0, len(moves), _SLICE):
                part = moves[i : i + _SLICE]  # context << 32 | count
                args = (
                    ns.id,
                    g.contexts[part >> 32].tobytes(),
                    width,
                    (part & 0xFFFFFFFF).tolist(),
                )
                await conn.execute(
                    f"INSERT INTO classes (ns, ctx, count, size) SELECT $1, {_CTX}, b.count, "
                    "b.size FROM unnest($4::bigint[], $5::bigint[]) "
                    "WITH ORDINALITY AS b(count, size, i) "
                    "ON CONFLICT (ns, ctx, count) DO UPDATE SET "
                    "size = classes.size + excluded.size",
                    *args,
                    sizes[i : i + _SLICE].tolist(),
                )
                # A class left by its last candidate disappears (lookup never sees one);
                # only a class that shrank can have been left.
                shrunk = part[sizes[i : i + _SLICE] < 0]
                if len(shrunk):
                    await conn.execute(
                        "DELETE FROM classes c USING unnest($4::bigint[]) WITH ORDINALITY AS "
                        f"b(count, i) WHERE c.ns = $1 AND c.ctx = {_CTX} AND c.count = b.count "
                        "AND c.size <= 0",
                        ns.id,
                        g.contexts[shrunk >> 32].tobytes(),
                        width,
                        (shrunk & 0xFFFFFFFF).tolist(),
                    )
        if sign < 0:
            words = Counter(chain.from_iterable(map(unpack, bodies)))
            rows = await conn.fetch(
                "UPDATE vocab SET count = vocab.count - b.n "
                "FROM unnest($1::bigint[], $2::bigint[]) AS b(id, n) WHERE vocab.id = b.id "
                "RETURNING vocab.count, b.n",
                list(words),
                list(words.values()),
            )
            await _move_word_classes(conn, ns, ((c + n, c) for c, n in rows))
            await conn.execute(
                "DELETE FROM vocab WHERE id = ANY($1::bigint[]) AND count <= 0", list(words)
            )
        return Change.of(ns.id, version, batch)

    @staticmethod
    async def _stored_contexts(conn: asyncpg.Connection, ns: Namespace, g: Grams) -> Any:
        """Which of a batch's contexts the model has (a boolean per context)."""
        import numpy as np

        stored = np.zeros(len(g.contexts), dtype=bool)
        width = 4 * g.k
        for part in _parts(np.arange(len(stored))):
            rows = await conn.fetch(
                "SELECT b.i FROM generate_series(1, $4::int) AS b(i) WHERE EXISTS "
                f"(SELECT 1 FROM classes c WHERE c.ns = $1 AND c.ctx = {_CTX})",
                ns.id,
                g.contexts[part].tobytes(),
                width,
                len(part),
            )
            if rows:
                at = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                stored[part[at - 1]] = True
        return stored

    # ------------------------------------------------------------------ forgetting

    async def forget(self, ns: Namespace, message_ids: Sequence[int]) -> int:
        return await self._forget_ids(ns, list(message_ids))

    async def forget_author(self, ns: Namespace, author: int) -> int:
        return await self._forget_selected(ns, "author = $2", author)

    async def forget_channel(self, ns: Namespace, channel: int) -> int:
        return await self._forget_selected(ns, "channel = $2", channel)

    async def forget_thread(self, ns: Namespace, thread: int) -> int:
        return await self._forget_selected(ns, "thread = $2", thread)

    async def forget_older_than(self, ns: Namespace, timestamp: float) -> int:
        return await self._forget_selected(ns, "created < $2", timestamp)

    async def _forget_selected(self, ns: Namespace, where: str, arg: Any) -> int:
        rows = await self._pool.fetch(
            f"SELECT id FROM messages WHERE ns = $1 AND {where}", ns.id, arg
        )
        return await self._forget_ids(ns, [int(r[0]) for r in rows])

    async def _forget_ids(self, ns: Namespace, ids: list[int]) -> int:
        forgotten = 0
        for batch in chunks(ids, 5_000):
            async with self._writing(ns.id) as conn:
                rows = await conn.fetch(
                    "SELECT id, tokens FROM messages WHERE ns = $1 AND id = ANY($2::bigint[])",
                    ns.id,
                    list(batch),
                )
                if not rows:
                    continue
                blobs = [(int(i), bytes(b)) for i, b in rows]
                change = await self._apply(conn, ns, [b for _, b in blobs], -1)
                pairs = [(g, mid) for mid, b in blobs for g in anchors(b)]
                await conn.execute(
                    "DELETE FROM anchors a USING unnest($2::bigint[], $3::bigint[]) AS b(g, m) "
                    "WHERE a.ns = $1 AND a.gram = b.g AND a.msg = b.m",
                    ns.id,
                    [g for g, _ in pairs],
                    [m for _, m in pairs],
                )
                await conn.execute(
                    "DELETE FROM messages WHERE ns = $1 AND id = ANY($2::bigint[])",
                    ns.id,
                    [m for m, _ in blobs],
                )
            self.read_cache.advance(change)
            forgotten += len(blobs)
        return forgotten

    async def purge(self, ns: Namespace) -> int:
        return await self._purge(ns.id, _PURGE)

    async def drop_namespace(self, ns: Namespace) -> int:
        return await self._purge(ns.id, _DROP)

    async def _purge(self, ns_id: int, mode: int) -> int:
        # Recorded first, so a crash during the deletion leaves a record that the next
        # process to start finishes.
        async with self._writing() as conn:
            await conn.execute(
                "UPDATE namespaces SET purging = greatest(purging, $1) WHERE id = $2", mode, ns_id
            )
        async with self._writing(ns_id) as conn:
            n = await conn.fetchval("SELECT COUNT(*) FROM messages WHERE ns = $1", ns_id)
            for table in ("classes", "transitions", "vocab", "messages", "anchors"):
                await conn.execute(f"DELETE FROM {table} WHERE ns = $1", ns_id)
            if mode == _DROP:
                await conn.execute("DELETE FROM namespaces WHERE id = $1", ns_id)
            else:
                await conn.execute(
                    "UPDATE namespaces SET purging = 0, version = version + 1 WHERE id = $1", ns_id
                )
        return int(n)

    async def _resume_purges(self) -> None:
        rows = await self._pool.fetch("SELECT id, name, purging FROM namespaces WHERE purging > 0")
        for ns_id, name, mode in rows:
            n = await self._purge(int(ns_id), int(mode))
            log.warning("finished the purge of %s cut short by a crash: %d messages", name, n)

    # ------------------------------------------------------------------ reading

    async def _val(self, sql: str, *args: Any) -> Any:
        return await self._pool.fetchval(sql, *args)

    async def is_complete(self, ns: Namespace) -> bool:
        return bool(await self._val("SELECT complete FROM namespaces WHERE id = $1", ns.id))

    async def mark_complete(self, ns: Namespace) -> None:
        async with self._writing() as conn:
            await conn.execute("UPDATE namespaces SET complete = 1 WHERE id = $1", ns.id)

    async def is_empty(self, ns: Namespace) -> bool:
        return await self._val("SELECT 1 FROM messages WHERE ns = $1 LIMIT 1", ns.id) is None

    async def last_message(self, ns: Namespace, channel: int) -> int | None:
        sql = "SELECT MAX(id) FROM messages WHERE ns = $1 AND channel = $2"
        value = await self._val(sql, ns.id, channel)
        return None if value is None else int(value)

    async def author_messages(self, ns: Namespace, author: int) -> int:
        sql = "SELECT COUNT(*) FROM messages WHERE ns = $1 AND author = $2"
        return int(await self._val(sql, ns.id, author))

    async def known_messages(self, ns: Namespace, ids: Sequence[int]) -> set[int]:
        sql = "SELECT id FROM messages WHERE ns = $1 AND id = ANY($2::bigint[])"
        return {int(r[0]) for r in await self._pool.fetch(sql, ns.id, list(ids))}

    async def autocomplete(self, ns: Namespace, prefix: str, limit: int = 25) -> list[str]:
        folded = prefix.strip().casefold()
        if not folded:
            rows = await self._pool.fetch(
                "SELECT token FROM vocab WHERE ns = $1 AND count > 0 "
                "ORDER BY count DESC, id DESC LIMIT $2",
                ns.id,
                limit,
            )
        else:
            rows = await self._pool.fetch(
                "SELECT token FROM vocab WHERE ns = $1 AND folded >= $2 AND folded < $3 "
                "AND count > 0 ORDER BY count DESC, id DESC LIMIT $4",
                ns.id,
                folded,
                folded + "\U0010ffff",
                limit,
            )
        return [str(r[0]) for r in rows]

    async def stats(self, ns: Namespace, top: int = 10) -> Stats:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT COUNT(*) FROM messages WHERE ns = $1), "
                "(SELECT COALESCE(SUM(count), 0) FROM vocab WHERE ns = $1 AND count > 0), "
                "(SELECT COUNT(*) FROM vocab WHERE ns = $1 AND count > 0), "
                "(SELECT COUNT(DISTINCT ctx) FROM classes WHERE ns = $1 AND ctx <> ''::bytea), "
                "(SELECT COUNT(DISTINCT author) FROM messages WHERE ns = $1), "
                "pg_database_size(current_database())",
                ns.id,
            )
            top_words = await conn.fetch(
                "SELECT token, count FROM vocab WHERE ns = $1 AND count > 0 "
                "ORDER BY count DESC, id DESC LIMIT $2",
                ns.id,
                top,
            )
            channels = await conn.fetch(
                "SELECT channel, COUNT(*) FROM messages WHERE ns = $1 GROUP BY channel "
                "ORDER BY COUNT(*) DESC, channel LIMIT $2",
                ns.id,
                top,
            )
        assert row is not None
        messages, tokens, vocabulary, contexts, authors, size = row
        return Stats(
            messages=int(messages),
            tokens=int(tokens),
            vocabulary=int(vocabulary),
            contexts=int(contexts),
            order=ns.order,
            top_words=[(str(t), int(c)) for t, c in top_words],
            channels=[(None if c is None else int(c), int(n)) for c, n in channels],
            authors=int(authors),
            database_bytes=int(size),
        )

    async def selection(
        self,
        ns: Namespace,
        *,
        author: int | None = None,
        channel: int | None = None,
        limit: int = 20_000,
    ) -> MemoryModel:
        """A model of only one author's and/or one channel's most recent messages (built in
        a worker thread, as on SQLite: seconds of Python off the event loop)."""
        rows = await self._pool.fetch(
            "SELECT tokens FROM messages WHERE ns = $1 AND ($2::bigint IS NULL OR author = $2) "
            "AND ($3::bigint IS NULL OR channel = $3) ORDER BY id DESC LIMIT $4",
            ns.id,
            author,
            channel,
            limit,
        )
        loop = asyncio.get_running_loop()
        sequences, wanted = await loop.run_in_executor(BUILDER, decode_bodies, rows)
        spelled = await self._pool.fetch(
            "SELECT id, token FROM vocab WHERE id IN "
            "(SELECT value::bigint FROM json_array_elements_text($2::json)) AND ns = $1",
            ns.id,
            wanted,
        )
        return await loop.run_in_executor(BUILDER, memory_model, ns.order, sequences, spelled)

    async def words(self, ns: Namespace) -> list[str]:
        rows = await self._pool.fetch("SELECT token FROM vocab WHERE ns = $1 ORDER BY id", ns.id)
        return [str(r[0]) for r in rows]

    async def reserve_words(self, ns: Namespace, words: Sequence[str]) -> None:
        async with self._writing(ns.id) as conn:
            await self._intern(conn, ns, Counter(dict.fromkeys(words, 0)))

    async def messages(self, ns: Namespace) -> AsyncIterator[list[StoredMessage]]:
        after: int | None = None
        while True:
            rows = await self._pool.fetch(
                "SELECT id, author, channel, created, thread, tokens FROM messages "
                "WHERE ns = $1 AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT 2000",
                ns.id,
                after,
            )
            if not rows:
                return
            bodies = [unpack(bytes(r[5])) for r in rows]
            spelled = await self._pool.fetch(
                "SELECT id, token FROM vocab WHERE id = ANY($2::bigint[]) AND ns + 0 = $1",
                ns.id,
                sorted({t for b in bodies for t in b}),
            )
            names = {int(i): str(t) for i, t in spelled}
            yield [
                StoredMessage(int(r[0]), [names[t] for t in b], r[1], r[2], r[3], r[4])
                for r, b in zip(rows, bodies, strict=True)
            ]
            after = int(rows[-1][0])

    # ------------------------------------------------------------------ settings

    async def settings_rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._pool.fetch(_dollars(sql), *args)]

    async def settings_write(self, statements: Sequence[Statement]) -> None:
        async with self._writing() as conn:
            for sql, args in statements:
                await conn.execute(_dollars(sql), *args)

    # ------------------------------------------------------------------ consistency

    async def _stored_transitions(self, ns: Namespace) -> Transitions:
        stored: Transitions = Counter()
        sql = "SELECT ctx, next, count FROM transitions WHERE ns = $1"
        for key, nxt, count in await self._pool.fetch(sql, ns.id):
            stored[(*unpack(bytes(key)), int(nxt))] = int(count)
        return stored

    async def _sequences(self, ns: Namespace) -> list[list[int]]:
        rows = await self._pool.fetch("SELECT tokens FROM messages WHERE ns = $1", ns.id)
        return [unpack(bytes(r[0])) for r in rows]

    async def _vocab_counts(self, ns: Namespace) -> dict[int, int]:
        rows = await self._pool.fetch("SELECT id, count FROM vocab WHERE ns = $1", ns.id)
        return {int(i): int(c) for i, c in rows}

    async def _class_mismatches(self, ns: Namespace) -> list[tuple[bytes, int, int, int]]:
        rows = await self._pool.fetch(
            "WITH h AS MATERIALIZED (SELECT ctx, count, COUNT(*) AS n FROM transitions "
            "WHERE ns = $1 GROUP BY ctx, count UNION ALL SELECT ''::bytea, count, COUNT(*) "
            "FROM vocab WHERE ns = $1 AND count > 0 GROUP BY count) "
            "SELECT h.ctx, h.count, h.n, c.size FROM h LEFT JOIN classes c "
            "ON c.ns = $1 AND c.ctx = h.ctx AND c.count = h.count "
            "WHERE c.size IS DISTINCT FROM h.n "
            "UNION ALL SELECT c.ctx, c.count, 0, c.size FROM classes c WHERE c.ns = $1 "
            "AND NOT EXISTS (SELECT 1 FROM h WHERE h.ctx = c.ctx AND h.count = c.count) "
            "LIMIT 20",
            ns.id,
        )
        return [(bytes(c), int(k), int(n), int(z or 0)) for c, k, n, z in rows]

    async def _nonpositive(self, ns: Namespace) -> int:
        sql = "SELECT COUNT(*) FROM transitions WHERE ns = $1 AND count <= 0"
        return int(await self._val(sql, ns.id))


def _counted(bodies: dict[int, bytes], order: int) -> tuple[list[int], list[Grams]]:
    """A batch's anchor rows and its transitions to add (for a worker thread)."""
    return anchor_rows(bodies), grams(list(bodies.values()), order, +1)


_HELD = (
    "SELECT EXISTS (SELECT 1 FROM vocab WHERE ns = $1), "
    "EXISTS (SELECT 1 FROM transitions WHERE ns = $1)"
)
_NEW_IDS = "SELECT nextval('vocab_id') FROM generate_series(1, $1::int)"


async def _move_word_classes(
    conn: asyncpg.Connection, ns: Namespace, moves: Iterable[tuple[int, int]]
) -> None:
    """Keep the word-frequency classes (context b"") as words' counts move (old, new)."""
    sizes = word_class_moves(moves)
    if not sizes:
        return
    await conn.execute(
        "INSERT INTO classes (ns, ctx, count, size) SELECT $1, ''::bytea, b.count, b.size "
        "FROM unnest($2::bigint[], $3::bigint[]) AS b(count, size) "
        "ON CONFLICT (ns, ctx, count) DO UPDATE SET size = classes.size + excluded.size",
        ns.id,
        list(sizes),
        list(sizes.values()),
    )
    if shrunk := [c for c, n in sizes.items() if n < 0]:
        await conn.execute(
            "DELETE FROM classes WHERE ns = $1 AND ctx = ''::bytea AND count = ANY($2::bigint[]) "
            "AND size <= 0",
            ns.id,
            shrunk,
        )


async def _prepare_reads(conn: asyncpg.Connection) -> None:
    """Run a generation's reads once on a new connection (of a namespace that does not
    exist): their first execution parses them and loads the catalog entries they use,
    5-7 ms each for the read-ahead ones, which the first request would otherwise wait for.
    (Before the first migration there is nothing to read yet: connect runs it after.)"""
    if await conn.fetchval("SELECT to_regclass('classes')") is None:
        return
    walk: tuple[list[float], float, int, int] = ([], 1.0, 0, _FORESEE_AT_MOST)
    await conn.fetch(_FORESEEN, 0, SMALL + 1, [b"\0\0\0\0"], 4, *walk)
    await conn.fetch(_FORESEEN_DRAW, 0, SMALL + 1, b"\0\0\0\0", 4, *walk, 1, [], 0, False, 0)
    await conn.fetch(_LOOKUP, 0, SMALL + 1, [b"\0\0\0\0"], _AHEAD, 4, _FAN + 1)
    await conn.fetch(_DRAW, 0, SMALL + 1, b"\0\0\0\0", _AHEAD, 4, _FAN + 1, 1, [], 0, False, 0)


async def _keep(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: the default reset costs a round trip per
    query, which generation (a query per word) would pay 30 times. Nothing needs resetting:
    transactions end in their ``async with``, session locks are released in ``finally``, and
    the bot sets no session state, listens to nothing and keeps no cursors open."""


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class PostgresModel(StoredModel):
    """:class:`bot.core.model.ModelReader` over one namespace, through the pool."""

    def __init__(
        self,
        pool: asyncpg.Pool | asyncpg.Connection,
        ns: Namespace,
        cache: ReadCache,
    ) -> None:
        super().__init__(ns, cache)
        self._pool = pool  # a request (run) holds one connection for all its reads

    async def run(self, job: Callable[[ModelReader], Awaitable[T]]) -> T:
        if not isinstance(self._pool, asyncpg.Pool):
            return await super().run(job)
        # One connection for the whole request: no pool round trip per read, and its
        # prepared statements are reused from one read to the next.
        async with self._pool.acquire() as conn:
            return await PostgresModel(conn, self.ns, self._cache).run(job)

    async def _version_row(self) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self._pool.fetchrow(
            "SELECT created, version FROM namespaces WHERE id = $1", self.ns.id
        )
        return row

    async def _lookup_rows(self, keys: list[bytes], ahead: Ahead | None) -> list[Any]:
        if ahead is not None and ahead.steps:
            return list(
                await self._pool.fetch(
                    _FORESEEN,
                    self.ns.id,
                    SMALL + 1,
                    keys,
                    4 * self.ns.order,
                    ahead.uniforms(),
                    ahead.temperature or 1.0,  # T = 0 draws at 0: the first candidate
                    ahead.masked,
                    _FORESEE_AT_MOST,
                )
            )
        return list(
            await self._pool.fetch(
                _LOOKUP, self.ns.id, SMALL + 1, keys, _AHEAD, 4 * self.ns.order, _FAN + 1
            )
        )

    async def _members(
        self,
        key: bytes,
        count: int,
        skip: list[int],
        offset: int,
        limit: int | None,
        start: int = 0,
    ) -> list[int]:
        table, column, where, args = self._where(key, count)
        at = len(args)
        # The words held apart are skipped in the same query: one read per draw.
        where += f" AND {column} <> ALL(${at + 1}::bigint[])"
        if limit is None and not offset and not start:
            # A whole class (thousands at the start of a message) as one array: a third of
            # the time of as many rows.
            value = await self._pool.fetchval(
                f"SELECT array_agg({column} ORDER BY {column}) FROM {table} WHERE {where}",
                *args,
                skip,
            )
            return [] if value is None else list(value)
        rows = await self._pool.fetch(
            f"SELECT {column} FROM {table} WHERE {where} AND {column} >= ${at + 2} "
            f"ORDER BY {column} LIMIT ${at + 4} OFFSET ${at + 3}",
            *args,
            skip,
            start,
            offset,
            limit,
        )
        return [int(r[0]) for r in rows]

    async def _marks(self, key: bytes, count: int, every: int) -> list[int]:
        table, column, where, args = self._where(key, count)
        value = await self._pool.fetchval(
            f"SELECT array_agg(m ORDER BY m) FROM (SELECT {column} AS m, row_number() OVER "
            f"(ORDER BY {column}) - 1 AS r FROM {table} WHERE {where}) s "
            f"WHERE r % ${len(args) + 1} = 0",
            *args,
            every,
        )
        return [] if value is None else list(value)

    def _where(self, key: bytes, count: int) -> tuple[str, str, str, tuple[Any, ...]]:
        table, column, columns, args = self._class_of(key, count)
        return table, column, " AND ".join(f"{c} = ${i}" for i, c in enumerate(columns, 1)), args

    async def _draw_rows(
        self,
        key: bytes,
        count: int,
        skip: list[int],
        offset: int,
        whole: bool,
        start: int,
        ahead: Ahead | None,
    ) -> tuple[list[int], list[Any]]:
        if not key:  # word frequencies: the context a word makes depends on the walk's
            return await super()._draw_rows(key, count, skip, offset, whole, start, None)
        if ahead is not None and ahead.steps > 1:  # (this draw is the first of ``ahead``)
            rows = await self._pool.fetch(
                _FORESEEN_DRAW,
                self.ns.id,
                SMALL + 1,
                key,
                4 * self.ns.order,
                ahead.uniforms()[: ahead.steps - 1],  # this step's uniform is drawn
                ahead.temperature or 1.0,
                max(0, ahead.masked - 1),
                _FORESEE_AT_MOST,
                count,
                skip,
                offset,
                whole,
                start,
            )
        else:
            rows = await self._pool.fetch(
                _DRAW,
                self.ns.id,
                SMALL + 1,
                key,
                _AHEAD,
                4 * self.ns.order,
                _FAN + 1,
                count,
                skip,
                offset,
                whole,
                start,
            )
        picked, members = rows[0][2], rows[0][-1]
        if whole:
            return ([] if members is None else list(members)), rows[1:]
        return ([] if picked is None else [int(picked)]), rows[1:]

    async def _context_rows(self, key: bytes) -> tuple[Any, Any]:
        import numpy as np

        row = await self._pool.fetchrow(  # two arrays: a third of the time of as many rows
            "SELECT array_agg(next), array_agg(count) FROM transitions WHERE ns = $1 AND ctx = $2",
            self.ns.id,
            key,
        )
        nexts, counts = (row[0] or [], row[1] or []) if row is not None else ([], [])
        return np.array(nexts, dtype=np.int64), np.array(counts, dtype=np.int64)

    async def _top(self, key: bytes, least: int, limit: int | None) -> list[Any]:
        if not key:
            return list(
                await self._pool.fetch(
                    "SELECT id, count FROM vocab WHERE ns = $1 AND count >= $2 "
                    "ORDER BY count DESC, id LIMIT $3",
                    self.ns.id,
                    least,
                    limit,
                )
            )
        return list(
            await self._pool.fetch(
                "SELECT next, count FROM transitions WHERE ns = $1 AND ctx = $2 AND count >= $3 "
                "ORDER BY count DESC, next LIMIT $4",
                self.ns.id,
                key,
                least,
                limit,
            )
        )

    async def _unigram_rows(self) -> list[Any]:
        return list(
            await self._pool.fetch(
                "SELECT count, size FROM classes WHERE ns = $1 AND ctx = ''::bytea",
                self.ns.id,
            )
        )

    async def _counts(self, key: bytes, tokens: list[int]) -> list[Any]:
        if not key:
            sql = "SELECT id, count FROM vocab WHERE id = ANY($2::bigint[]) AND ns + 0 = $1"
            return list(await self._pool.fetch(sql, self.ns.id, tokens))
        sql = (
            "SELECT next, count FROM transitions WHERE ns = $1 AND ctx = $2 "
            "AND next = ANY($3::bigint[])"
        )
        return list(await self._pool.fetch(sql, self.ns.id, key, tokens))

    async def _resolve_one(self, word: str) -> int | None:
        value = await self._pool.fetchval(
            "(SELECT id FROM vocab WHERE ns = $1 AND token = $2 AND count > 0) UNION ALL "
            "(SELECT id FROM vocab WHERE ns = $1 AND folded = $3 AND count > 0 "
            "ORDER BY count DESC, id LIMIT 1) LIMIT 1",
            self.ns.id,
            word,
            word.casefold(),
        )
        return None if value is None else int(value)

    async def _spellings(self, head: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT token FROM vocab WHERE ns = $1 AND folded >= $2 AND folded < $3 "
            "AND count > 0 ORDER BY count DESC, id LIMIT 2000",
            self.ns.id,
            head,
            head + "\U0010ffff",
        )
        return [str(r[0]) for r in rows]

    async def _spell_rows(self, ids: list[int]) -> list[Any]:
        return list(
            await self._pool.fetch(
                "SELECT id, token FROM vocab WHERE id = ANY($2::bigint[]) AND ns + 0 = $1",
                self.ns.id,
                ids,
            )
        )

    async def _copy_rows(
        self, grams: list[int], heads: list[bytes], tails: list[bytes]
    ) -> list[Any]:
        # The expressions are the indexes' own, so PostgreSQL uses them.
        return list(
            await self._pool.fetch(
                "(SELECT tokens FROM messages WHERE ns = $1 AND id IN (SELECT DISTINCT msg FROM "
                f"anchors WHERE ns = $1 AND gram = ANY($2::bigint[])) LIMIT {PER_PROBE}) "
                "UNION ALL (SELECT DISTINCT tokens FROM messages WHERE ns = $1 AND "
                f"substring(tokens FROM 1 FOR 16) = ANY($3::bytea[]) LIMIT {PER_PROBE}) "
                "UNION ALL (SELECT DISTINCT tokens FROM messages WHERE ns = $1 AND "
                "substring(tokens FROM greatest(octet_length(tokens) - 15, 1)) = ANY($4::bytea[]) "
                f"LIMIT {PER_PROBE})",
                self.ns.id,
                grams,
                heads,
                tails,
            )
        )
