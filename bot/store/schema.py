"""The database schema as a list of migrations; ``PRAGMA user_version`` says how many ran."""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# Each entry upgrades the schema by one version. Never edit a released entry: add one.
MIGRATIONS: tuple[str, ...] = (
    # 1: the model
    """
    CREATE TABLE namespaces (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ord INTEGER NOT NULL DEFAULT 2,
        created REAL NOT NULL
    );
    CREATE TABLE vocab (
        id INTEGER PRIMARY KEY,
        ns INTEGER NOT NULL,
        token TEXT NOT NULL,
        folded TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        UNIQUE (ns, token)
    );
    -- Ids 1 and 2 are the start and end markers of every model (bot.model.BOS/EOS);
    -- these rows, in no namespace, keep real words from ever being numbered 1 or 2.
    INSERT INTO vocab (id, ns, token, folded, count) VALUES (1, 0, char(2), '', 0);
    INSERT INTO vocab (id, ns, token, folded, count) VALUES (2, 0, char(3), '', 0);
    CREATE INDEX vocab_folded ON vocab (ns, folded, count);
    CREATE INDEX vocab_count ON vocab (ns, count);
    CREATE TABLE transitions (
        ns INTEGER NOT NULL,
        ctx BLOB NOT NULL,
        next INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (ns, ctx, next)
    ) WITHOUT ROWID;
    CREATE TABLE classes (
        ns INTEGER NOT NULL,
        ctx BLOB NOT NULL,
        count INTEGER NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (ns, ctx, count)
    ) WITHOUT ROWID;
    -- A class left by its last candidate disappears (lookup never sees an empty class).
    CREATE TRIGGER classes_empty AFTER UPDATE OF size ON classes WHEN new.size <= 0
    BEGIN
        DELETE FROM classes WHERE ns = new.ns AND ctx = new.ctx AND count = new.count;
    END;
    -- A rowid table: new messages are appended whatever their id (ids of imported lines
    -- are hashes), so only the small (ns, id) index takes random inserts.
    CREATE TABLE messages (
        ns INTEGER NOT NULL,
        id INTEGER NOT NULL,
        author INTEGER,
        channel INTEGER,
        created REAL,
        tokens BLOB NOT NULL,
        UNIQUE (ns, id)
    );
    CREATE INDEX messages_author ON messages (ns, author);
    CREATE INDEX messages_channel ON messages (ns, channel, id);
    CREATE TABLE anchors (
        ns INTEGER NOT NULL,
        gram INTEGER NOT NULL,  -- hash of a 5-token window (see bot.store.core._anchor)
        msg INTEGER NOT NULL,
        PRIMARY KEY (ns, gram, msg)
    ) WITHOUT ROWID;
    """,
    # 2: what the Discord bot remembers about servers, channels and members
    """
    CREATE TABLE guilds (
        id INTEGER PRIMARY KEY,
        consent TEXT NOT NULL DEFAULT 'opt-in' CHECK (consent IN ('opt-in', 'opt-out')),
        retention_days INTEGER,
        removed_at REAL
    );
    CREATE TABLE channels (
        guild INTEGER NOT NULL,
        channel INTEGER NOT NULL,
        listen INTEGER NOT NULL DEFAULT 0,
        chatter REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (guild, channel)
    ) WITHOUT ROWID;
    CREATE TABLE members (
        guild INTEGER NOT NULL,
        user INTEGER NOT NULL,
        consent TEXT NOT NULL CHECK (consent IN ('in', 'out')),
        changed REAL NOT NULL,
        PRIMARY KEY (guild, user)
    ) WITHOUT ROWID;
    CREATE TABLE backfills (
        guild INTEGER NOT NULL,
        channel INTEGER NOT NULL,
        before INTEGER,
        remaining INTEGER NOT NULL,
        read INTEGER NOT NULL DEFAULT 0,
        learned INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (guild, channel)
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    -- Threads are learned under their parent channel; this remembers which thread, so a
    -- deleted thread can be forgotten (Discord sends no per-message deletes for it).
    ALTER TABLE messages ADD COLUMN thread INTEGER;
    CREATE INDEX messages_thread ON messages (ns, thread) WHERE thread IS NOT NULL;
    """,
    # 3: a purge is first recorded, then done; one cut short by a crash is finished on open.
    # A bundled corpus is complete only once its whole import committed.
    """
    ALTER TABLE namespaces ADD COLUMN purging INTEGER NOT NULL DEFAULT 0;  -- 1 purge, 2 drop
    ALTER TABLE namespaces ADD COLUMN complete INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: a backfill that failed (no access, channel deleted) says why, and waits for an admin
    # to start it again instead of failing anew on every start.
    """
    ALTER TABLE backfills ADD COLUMN failed TEXT;
    """,
    # 5: the originality check finds short messages (too short for an anchor) by their
    # first and last 4 tokens (16 bytes of the packed body; the whole body if shorter).
    """
    CREATE INDEX messages_head ON messages (ns, substr(tokens, 1, 16));
    CREATE INDEX messages_tail ON messages (ns, substr(tokens, -16));
    """,
    # 6: every write of a model's counts raises its version in the same transaction, so
    # readers can remember what they read until it changes (bot.store.reading.ReadCache).
    """
    ALTER TABLE namespaces ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: the classes of the word frequencies (order 0, the last back-off) under the empty
    # context, kept by every write as a context's are: reading them is one index probe,
    # where counting them is a pass over the vocabulary (4 ms at 36,000 words), which the
    # first request after every learned batch paid.
    """
    INSERT INTO classes (ns, ctx, count, size)
    SELECT ns, X'', count, COUNT(*) FROM vocab WHERE count > 0 GROUP BY ns, count;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
