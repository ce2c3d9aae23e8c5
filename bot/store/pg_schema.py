"""The PostgreSQL schema as a list of migrations; ``markov_schema.version`` says how many ran.

The same tables as SQLite's (:mod:`bot.store.schema`), in PostgreSQL's types: text in the
"C" collation (byte order, as SQLite compares), so prefix ranges and ties sort alike.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# Each entry upgrades the schema by one version. Never edit a released entry: add one.
MIGRATIONS: tuple[str, ...] = (
    # 1: the model, server settings, purges and bundled-corpus completion (SQLite's 1 to 5)
    """
    CREATE TABLE namespaces (
        id BIGSERIAL PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL UNIQUE,
        ord INTEGER NOT NULL DEFAULT 2,
        created DOUBLE PRECISION NOT NULL,
        purging INTEGER NOT NULL DEFAULT 0,  -- 1 purge, 2 drop
        complete INTEGER NOT NULL DEFAULT 0
    );
    -- Ids 1 and 2 are the start and end markers of every model (bot.core.model.BOS/EOS).
    CREATE SEQUENCE vocab_id START 3;
    CREATE TABLE vocab (
        id BIGINT PRIMARY KEY DEFAULT nextval('vocab_id'),
        ns BIGINT NOT NULL,
        token TEXT COLLATE "C" NOT NULL,
        folded TEXT COLLATE "C" NOT NULL,
        count BIGINT NOT NULL DEFAULT 0,
        UNIQUE (ns, token)
    );
    CREATE INDEX vocab_folded ON vocab (ns, folded, count);
    CREATE INDEX vocab_count ON vocab (ns, count);
    CREATE TABLE transitions (
        ns BIGINT NOT NULL,
        ctx BYTEA NOT NULL,
        next BIGINT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (ns, ctx, next)
    );
    CREATE TABLE classes (
        ns BIGINT NOT NULL,
        ctx BYTEA NOT NULL,
        count BIGINT NOT NULL,
        size BIGINT NOT NULL,
        PRIMARY KEY (ns, ctx, count)
    );
    CREATE TABLE messages (
        ns BIGINT NOT NULL,
        id BIGINT NOT NULL,
        author BIGINT,
        channel BIGINT,
        created DOUBLE PRECISION,
        tokens BYTEA NOT NULL,
        thread BIGINT,
        PRIMARY KEY (ns, id)
    );
    CREATE INDEX messages_author ON messages (ns, author);
    CREATE INDEX messages_channel ON messages (ns, channel, id);
    CREATE INDEX messages_thread ON messages (ns, thread) WHERE thread IS NOT NULL;
    CREATE INDEX messages_head ON messages (ns, substring(tokens FROM 1 FOR 16));
    CREATE INDEX messages_tail ON messages
        (ns, substring(tokens FROM greatest(octet_length(tokens) - 15, 1)));
    CREATE TABLE anchors (
        ns BIGINT NOT NULL,
        gram BIGINT NOT NULL,
        msg BIGINT NOT NULL,
        PRIMARY KEY (ns, gram, msg)
    );
    CREATE TABLE guilds (
        id BIGINT PRIMARY KEY,
        consent TEXT NOT NULL DEFAULT 'opt-in' CHECK (consent IN ('opt-in', 'opt-out')),
        retention_days INTEGER,
        removed_at DOUBLE PRECISION
    );
    CREATE TABLE channels (
        guild BIGINT NOT NULL,
        channel BIGINT NOT NULL,
        listen INTEGER NOT NULL DEFAULT 0,
        chatter DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (guild, channel)
    );
    CREATE TABLE members (
        guild BIGINT NOT NULL,
        "user" BIGINT NOT NULL,
        consent TEXT NOT NULL CHECK (consent IN ('in', 'out')),
        changed DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (guild, "user")
    );
    CREATE TABLE backfills (
        guild BIGINT NOT NULL,
        channel BIGINT NOT NULL,
        before BIGINT,
        remaining BIGINT NOT NULL,
        read BIGINT NOT NULL DEFAULT 0,
        learned BIGINT NOT NULL DEFAULT 0,
        skipped BIGINT NOT NULL DEFAULT 0,
        done INTEGER NOT NULL DEFAULT 0,
        failed TEXT,
        PRIMARY KEY (guild, channel)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: every write of a model's counts raises its version in the same transaction, so
    # readers can remember what they read until it changes (bot.store.reading.ReadCache).
    """
    ALTER TABLE namespaces ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    """,
    # 3: the words of one count in id order, as a draw from word frequencies reads them
    # (the 20,000 words said once, one at an offset), without sorting the whole class.
    """
    CREATE INDEX vocab_class ON vocab (ns, count, id);
    DROP INDEX vocab_count;
    """,
    # 4: the classes of the word frequencies (order 0, the last back-off) under the empty
    # context, kept by every write as a context's are: reading them is one index probe,
    # where counting them is a pass over the vocabulary (6-10 ms at 36,000 words).
    """
    INSERT INTO classes (ns, ctx, count, size)
    SELECT ns, ''::bytea, count, COUNT(*) FROM vocab WHERE count > 0 GROUP BY ns, count;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
