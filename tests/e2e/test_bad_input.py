"""Bad input, through the fake Discord, to the real bot: a table of what members can type.

Every option of every command a member can fill in gets out-of-range and non-finite
numbers, empty and over-long text, odd Unicode (zero-width characters, right-to-left
overrides, combining marks, emoji ZWJ sequences), text that looks like an injection (SQL,
markdown, ``@everyone``, user and role mentions), and uploads that are too big, binary or
not UTF-8. For each case:

* ``refused``: Discord itself would not send it (the fake enforces the min/max values,
  lengths and channel types the bot registered, and raises): the bot never sees it;
* ``rejected``: the bot answers with one ephemeral sentence saying what is wrong;
* ``accepted``: the bot answers normally.

Whatever the outcome, the initial response arrives within 3 s and a finished message is
shown, no reply contains traceback text, nothing is logged at ERROR level (by the bot or
by discord.py), no reply could ping anyone, and refused or rejected input leaves the
database exactly as it was (row counts and sums of every table, and the full contents
of the configuration tables).

One bot serves the whole module (each case uses a fresh member, so the per-member
cooldowns never interfere). The tokenizer and sampler are fuzzed with hypothesis in
``test_tokenize.py`` and ``test_sampling.py``; this file is about the Discord surface.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import MarkovBot, open_servers
from bot.services.settings import load_settings
from fake_discord import (
    BOT_USER_ID,
    BasicWorld,
    FakeDiscord,
    FakeDiscordError,
    InteractionRecord,
    basic_world,
    fake_file,
    running_bot,
    started_fake,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "fake-bot-token.for-the-bad-input-tests"
DEADLINE = 3.0
DISCORD_STRING_MAX = 6000  # Discord's own cap on a string option's max_length

# ---------------------------------------------------------------------- the inputs

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
RTL_OVERRIDE = "\u202eevil\u202c txt.exe"
COMBINING = "Z\u0351\u0334\u0321a\u0300\u0301\u0302\u0303l\u0308\u0489g\u035co\u0336"
EMOJI_ZWJ = "👩\u200d👩\u200d👧\u200d👦 🏳\ufe0f\u200d🌈 👨🏽\u200d💻"
SQL = "'; DROP TABLE messages; --"
MARKDOWN = "**bold** __u__ `code` ||spoiler|| [link](https://evil.example) # h"
MENTIONS = "@everyone @here <@123> <@&456> <#789> <@!1>"
CONTROL = "a\x00b\x07c\x1b[31md\r\ne\tf"
WEIRD = {
    "zero-width": ZERO_WIDTH,
    "rtl-override": RTL_OVERRIDE,
    "combining": COMBINING,
    "emoji-zwj": EMOJI_ZWJ,
    "sql": SQL,
    "markdown": MARKDOWN,
    "mentions": MENTIONS,
    "control": CONTROL,
    "spaces": "   ",
}
LONG = "x" * 10_000

#: Words the bot learns before the cases run (nothing in them looks like an error).
CHAT = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "when the cat sleeps the dog barks",
    "a cat and a dog are friends",
    "the sun is warm and the sky is blue",
] * 4

# A valid upload, with odd but legal text.
GOOD_UPLOAD = ("\ufeffmy cat sleeps\n" + EMOJI_ZWJ + " is a family\n" + COMBINING + "\n").encode()


@dataclasses.dataclass(frozen=True)
class Ref:
    """An option value only known once the world exists (a channel or member id)."""

    name: str


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    command: str
    options: dict[str, Any]
    expect: str  # "refused" | "rejected" | "accepted"
    admin: bool = False
    changes_db: bool = False  # accepted input that is meant to change the database
    reply: str | None = None  # a substring the answer must contain
    wait_for: str | None = None  # the answer is final once it contains this

    def __post_init__(self) -> None:
        assert self.expect in ("refused", "rejected", "accepted"), self.expect


def _fit(text: str, n: int) -> str:
    """``text`` repeated or cut to exactly ``n`` characters."""
    return (text * (n // max(1, len(text)) + 1))[:n]


def string_cases(
    command: str, option: str, max_len: int, filler: str = "xyz", **base: Any
) -> list[Case]:
    """Empty, over-long, the longest allowed, and every odd string, for one option."""
    admin = command.startswith("markov-admin")
    label = f"{command}:{option}"
    out = [
        Case(f"{label}=empty", command, {**base, option: ""}, "refused", admin),
        Case(f"{label}=10000", command, {**base, option: LONG}, "refused", admin),
        Case(f"{label}=max+1", command, {**base, option: "y" * (max_len + 1)}, "refused", admin),
        Case(f"{label}=max", command, {**base, option: _fit(filler, max_len)}, "rejected", admin),
        Case(
            f"{label}=max-mentions",
            command,
            {**base, option: _fit(MENTIONS + " ", max_len)},
            "rejected",
            admin,
        ),
    ]
    for name, text in WEIRD.items():
        out.append(
            Case(f"{label}={name}", command, {**base, option: text[:max_len]}, "rejected", admin)
        )
    return out


UPLOAD = {"file": fake_file("ok.txt", b"my cat sleeps\n")}


def build_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.extend

    # ---- /markov ------------------------------------------------------------------
    add(string_cases("markov", "start", 200))
    add(string_cases("markov", "corpus", 32))
    add(
        [
            Case("markov:start=learned", "markov", {"start": "the cat"}, "accepted"),
            Case("markov:corpus=bundled", "markov", {"corpus": "tiny-lesson"}, "accepted"),
            Case("markov:corpus=bundled-upper", "markov", {"corpus": "TINY-LESSON"}, "rejected"),
        ]
    )
    for value, expect in [
        (-0.1, "refused"),
        (5.0001, "refused"),
        (math.inf, "refused"),
        (-math.inf, "refused"),
        (1e308, "refused"),
        (math.nan, "rejected"),
        (0.0, "accepted"),
        (5.0, "accepted"),
        (5e-324, "accepted"),
    ]:
        add([Case(f"markov:temp={value!r}", "markov", {"temp": value}, expect)])
    for value, expect in [(0, "refused"), (-1, "refused"), (101, "refused"), (2**63, "refused")]:
        add([Case(f"markov:length={value}", "markov", {"length": value}, expect)])
    add([Case(f"markov:length={v}", "markov", {"length": v}, "accepted") for v in (1, 100)])
    # Discord's integer options stop at 2^53 - 1 (Int53): the largest seed, and 2^53 is refused.
    for value, expect in [(-1, "refused"), (2**53, "refused"), (2**64, "refused")]:
        add([Case(f"markov:seed={value}", "markov", {"seed": value}, expect)])
    add([Case(f"markov:seed={v}", "markov", {"seed": v}, "accepted") for v in (0, 2**53 - 1)])
    for value, expect in [
        (-1, "refused"),
        (10_001, "refused"),
        (0, "accepted"),
        (10_000, "accepted"),
    ]:
        add([Case(f"markov:top_k={value}", "markov", {"top_k": value}, expect)])
    for value, expect in [
        (0.0, "refused"),
        (0.0099, "refused"),
        (1.0001, "refused"),
        (math.inf, "refused"),
        (math.nan, "rejected"),
        (0.01, "accepted"),
        (1.0, "accepted"),
    ]:
        add([Case(f"markov:top_p={value!r}", "markov", {"top_p": value}, expect)])
    add(
        [
            Case("markov:user=not-opted-in", "markov", {"user": Ref("bob")}, "rejected"),
            Case("markov:user=the-bot", "markov", {"user": Ref("bot")}, "rejected"),
            Case("markov:user=opted-in", "markov", {"user": Ref("alice")}, "accepted"),
            Case("markov:channel=unlearned", "markov", {"channel": Ref("quiet")}, "rejected"),
            Case("markov:channel=thread", "markov", {"channel": Ref("thread")}, "refused"),
            Case("markov:channel=category", "markov", {"channel": Ref("category")}, "refused"),
            Case("markov:channel=learned", "markov", {"channel": Ref("general")}, "accepted"),
            Case(
                "markov:everything-at-max",
                "markov",
                {"temp": 5.0, "length": 100, "seed": 2**53 - 1, "top_k": 10_000, "top_p": 1.0},
                "accepted",
            ),
            # The largest answer: 100 words of a big corpus at T = 5 with the work shown
            # (Discord's embed limits are enforced by the fake).
            Case(
                "markov:everything-at-max-show-work",
                "markov",
                {
                    "corpus": "ubuntu-irc",
                    "temp": 5.0,
                    "length": 100,
                    "seed": 2**53 - 1,
                    "top_k": 10_000,
                    "top_p": 1.0,
                    "show_work": True,
                },
                "accepted",
            ),
        ]
    )

    # ---- /markov-explain -------------------------------------------------------------
    add(string_cases("markov-explain", "word", 200))
    add(string_cases("markov-explain", "corpus", 32))
    for value, expect in [
        (-0.1, "refused"),
        (math.inf, "refused"),
        (math.nan, "rejected"),
        (0.0, "accepted"),
        (5e-324, "accepted"),
        (5.0, "accepted"),
    ]:
        add([Case(f"markov-explain:temp={value!r}", "markov-explain", {"temp": value}, expect)])
    for value, expect in [(-1, "refused"), (10_001, "refused"), (10_000, "accepted")]:
        add([Case(f"markov-explain:top_k={value}", "markov-explain", {"top_k": value}, expect)])
    for value, expect in [(0.0, "refused"), (math.nan, "rejected"), (0.01, "accepted")]:
        add([Case(f"markov-explain:top_p={value!r}", "markov-explain", {"top_p": value}, expect)])
    add([Case("markov-explain:word=learned", "markov-explain", {"word": "cat"}, "accepted")])

    # ---- /markov-compare -------------------------------------------------------------
    add(string_cases("markov-compare", "start", 200))
    add(string_cases("markov-compare", "temps", 100))
    add(string_cases("markov-compare", "corpus", 32))
    for text in [
        "nan",
        "inf",
        "-inf",
        "1e309",
        "-0.5",
        "5.01",
        "1_0",
        ",,,",
        "0x10",
        "1,2,3,4,5,6,7",
    ]:
        add([Case(f"markov-compare:temps={text}", "markov-compare", {"temps": text}, "rejected")])
    for text in ["0,5", "0.1; 0.5 1", "5e-324", "１", "0.1," * 2]:
        add([Case(f"markov-compare:temps={text}", "markov-compare", {"temps": text}, "accepted")])
    for value, expect in [(-1, "refused"), (2**53, "refused"), (2**53 - 1, "accepted")]:
        add([Case(f"markov-compare:seed={value}", "markov-compare", {"seed": value}, expect)])
    add(
        [
            Case(
                "markov-compare:everything-at-max",
                "markov-compare",
                {"corpus": "ubuntu-irc", "temps": "5,5,5,5,5,5", "seed": 2**53 - 1},
                "accepted",
            )
        ]
    )

    # ---- /markov-step ---------------------------------------------------------------
    add(string_cases("markov-step", "start", 200))
    add(string_cases("markov-step", "corpus", 32))
    for value, expect in [
        (-0.1, "refused"),
        (5.0001, "refused"),
        (math.inf, "refused"),
        (math.nan, "rejected"),
        (0.0, "accepted"),
        (5e-324, "accepted"),
    ]:
        add([Case(f"markov-step:temp={value!r}", "markov-step", {"temp": value}, expect)])
    for value, expect in [
        (-1, "refused"),
        (2**53, "refused"),
        (0, "accepted"),
        (2**53 - 1, "accepted"),
    ]:
        add([Case(f"markov-step:seed={value}", "markov-step", {"seed": value}, expect)])

    # ---- /markov-admin ----------------------------------------------------------------
    chatter = "markov-admin chatter"
    for value, expect in [
        (-0.01, "refused"),
        (0.2000001, "refused"),
        (1.0, "refused"),
        (math.inf, "refused"),
        (-math.inf, "refused"),
        (math.nan, "rejected"),
    ]:
        add(
            [
                Case(
                    f"chatter:chance={value!r}",
                    chatter,
                    {"channel": Ref("quiet"), "chance": value},
                    expect,
                    admin=True,
                )
            ]
        )
    for value in (0.2, 0.0):  # 0 last: it switches chatter off again
        add(
            [
                Case(
                    f"chatter:chance={value!r}",
                    chatter,
                    {"channel": Ref("quiet"), "chance": value},
                    "accepted",
                    admin=True,
                    changes_db=True,
                )
            ]
        )
    add(
        [
            Case(
                "chatter:channel=thread",
                chatter,
                {"channel": Ref("thread"), "chance": 0.1},
                "refused",
                admin=True,
            )
        ]
    )
    retention = "markov-admin retention"
    for value in (-1, 3651, 2**63):
        add([Case(f"retention:days={value}", retention, {"days": value}, "refused", admin=True)])
    for value in (3650, 0):  # 0 last: keep everything again
        add(
            [
                Case(
                    f"retention:days={value}",
                    retention,
                    {"days": value},
                    "accepted",
                    admin=True,
                    changes_db=True,
                )
            ]
        )
    backfill = "markov-admin backfill"
    for value in (0, -5, 100_001, 2**63):
        add(
            [
                Case(
                    f"backfill:limit={value}",
                    backfill,
                    {"channel": Ref("general"), "limit": value},
                    "refused",
                    admin=True,
                )
            ]
        )
    add(
        [
            Case(
                "backfill:channel=not-listened",
                backfill,
                {"channel": Ref("quiet"), "limit": 1},
                "rejected",
                admin=True,
            ),
            Case(
                "backfill:limit=max",
                backfill,
                {"channel": Ref("general"), "limit": 100_000},
                "accepted",
                admin=True,
                changes_db=True,
                wait_for=" done ",
            ),
        ]
    )

    upload = "markov-admin corpus-upload"
    add(string_cases(upload, "name", 32, **UPLOAD))
    add(
        [
            Case("upload:name=bundled", upload, {"name": "alice", **UPLOAD}, "rejected", True),
            Case("upload:name=unicode", upload, {"name": "café", **UPLOAD}, "rejected", True),
            Case(
                "upload:name=path", upload, {"name": "../../etc/passwd", **UPLOAD}, "rejected", True
            ),
        ]
    )
    files: list[tuple[str, bytes, str, str | None]] = [
        ("over-5mb", b"a b c\n" * 833_334, "rejected", "limit is 5 MB"),
        ("6mb-binary", bytes(range(256)) * 24_000, "rejected", "limit is 5 MB"),
        ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "rejected", "binary"),
        ("utf16", "my cat sleeps\n".encode("utf-16"), "rejected", "binary"),
        ("latin1", "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1"), "rejected", "UTF-8"),
        ("truncated-utf8", "naïve".encode()[:3], "rejected", "UTF-8"),
        ("empty", b"", "rejected", "no text lines"),
        ("blank-lines", b"\n \r\n\t\n", "rejected", "no text lines"),
    ]
    for name, data, expect, reply in files:
        add(
            [
                Case(
                    f"upload:file={name}",
                    upload,
                    {"name": "bad", "file": fake_file(f"{name}.txt", data)},
                    expect,
                    admin=True,
                    reply=reply,
                )
            ]
        )
    add(
        [
            Case(
                "upload:file=odd-but-valid",
                upload,
                {"name": "  Odd-Unicode_1  ", "file": fake_file("odd.txt", GOOD_UPLOAD)},
                "accepted",
                admin=True,
                changes_db=True,
                wait_for="ready",
            ),
            Case(
                "upload:file=nul-after-8kb",
                upload,
                {"name": "nul", "file": fake_file("nul.txt", b"ab cd\n" * 1500 + b"x\x00y z\n")},
                "accepted",
                admin=True,
                changes_db=True,
                wait_for="ready",
            ),
            Case(
                "upload:file=only-symbols",
                upload,
                {"name": "symbols", "file": fake_file("s.txt", "```\ncode\n```\n" + ZERO_WIDTH)},
                "accepted",
                admin=True,
                changes_db=True,
                wait_for="ready",
            ),
            Case(
                "upload:file=one-long-line",
                upload,
                {"name": "long", "file": fake_file("l.txt", "word " * 100_000)},
                "accepted",
                admin=True,
                changes_db=True,
                wait_for="ready",
            ),
            Case(
                "upload:name=taken-again",
                upload,
                {"name": "odd-unicode_1", "file": fake_file("again.txt", b"more words here\n")},
                "accepted",
                admin=True,
                changes_db=True,
                wait_for="ready",
            ),
        ]
    )
    delete = "markov-admin corpus-delete"
    add(
        [
            c
            for c in string_cases(delete, "name", 32, filler="q")
            if c.expect == "refused"
            or c.id.endswith(("=max", "=sql", "=mentions", "=rtl-override"))
        ]
    )
    add([Case("corpus-delete:name=bundled", delete, {"name": "alice"}, "rejected", admin=True)])
    return [dataclasses.replace(c, **OVERRIDES.get(c.id, {})) for c in cases]


#: Where the generic string cases do not apply as they are.
OVERRIDES: dict[str, dict[str, Any]] = {
    # Blank start text means "from the start of a message", as if the option were empty.
    "markov:start=spaces": {"expect": "accepted"},
    "markov-explain:word=spaces": {"expect": "accepted"},
    "markov-compare:start=spaces": {"expect": "accepted"},
    "markov-step:start=spaces": {"expect": "accepted"},
    # The longest allowed corpus name is a valid name: it is learned.
    "markov-admin corpus-upload:name=max": {
        "expect": "accepted",
        "changes_db": True,
        "wait_for": "ready",
    },
}


CASES = build_cases()

# ---------------------------------------------------------------------- the bot


class ErrorLog(logging.Handler):
    """Every ERROR record from any logger: the bot's own and discord.py's."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclasses.dataclass
class Env:
    fake: FakeDiscord
    world: BasicWorld
    bot: MarkovBot
    db: Path
    refs: dict[str, int]
    errors: ErrorLog
    users: int = 0

    def member(self, admin: bool) -> int:
        self.users += 1
        user = self.fake.add_user(f"member{self.users}")
        self.fake.add_member(self.world.guild_id, user["id"])
        if admin:
            self.fake.make_admin(self.world.guild_id, user["id"])
        return int(user["id"])

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        return {k: self.refs[v.name] if isinstance(v, Ref) else v for k, v in options.items()}

    async def run(self, command: str, options: dict[str, Any], admin: bool) -> InteractionRecord:
        return await self.fake.invoke(
            self.world.guild_id, self.world.channel_id, self.member(admin), command, options
        )


async def answered(rec: InteractionRecord) -> dict[str, Any]:
    """The finished message, after checking the initial response came within 3 s."""
    await rec.wait_response(timeout=DEADLINE)
    message = await rec.wait_message(timeout=DEADLINE)
    assert rec.response_time is not None and rec.response_time < DEADLINE, rec.response_time
    assert not rec.rejected, rec.rejected
    return message


def visible_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("content") or "")]
    for embed in message.get("embeds") or []:
        parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields") or []]
        parts.append(str((embed.get("footer") or {}).get("text") or ""))
    return "\n".join(parts)


LEAKS = ("Traceback", 'File "', "Error:", "Exception", "sqlite3", "discord.errors", "went wrong")


def snapshot(db: Path) -> dict[str, Any]:
    """Row counts and count sums of every table; full rows of the configuration tables."""
    con = sqlite3.connect(db, timeout=10)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        snap: dict[str, Any] = {
            t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables
        }
        for table in ("vocab", "transitions", "classes"):
            column = "size" if table == "classes" else "count"
            snap[f"{table}.sum"] = con.execute(f"SELECT TOTAL({column}) FROM {table}").fetchone()[0]
        for table in ("namespaces", "guilds", "channels", "members", "backfills", "meta"):
            snap[f"{table}.rows"] = sorted(map(repr, con.execute(f"SELECT * FROM {table}")))
        return snap
    finally:
        con.close()


async def on_ready_done() -> None:
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "discord.py: on_ready"]
    if tasks:
        await asyncio.wait(tasks, timeout=10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    db = tmp_path_factory.mktemp("bad-input") / "markov.db"
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        async with started_fake(token=TOKEN) as fake:
            world = basic_world(fake)
            quiet = fake.add_text_channel(world.guild_id, "quiet")
            category = fake.add_category(world.guild_id, "a-category")
            bob = fake.add_user("bob")
            fake.add_member(world.guild_id, bob["id"])
            odd = fake.add_user("odd")  # not opted in, with a name that looks like a ping
            fake.add_member(world.guild_id, odd["id"], nick=ECHOED)
            refs = {
                "general": world.channel_id,
                "quiet": int(quiet["id"]),
                "thread": world.thread_id,
                "category": int(category["id"]),
                "alice": world.user_id,
                "bob": int(bob["id"]),
                "odd": int(odd["id"]),
                "bot": BOT_USER_ID,
            }
            settings = load_settings(
                {"MARKOV_DB": str(db), "DISCORD_TOKEN": TOKEN}, dotenv_path=None
            )
            async with (
                open_servers(settings) as servers,
                running_bot(fake, MarkovBot(settings, servers)) as bot,
            ):
                await on_ready_done()
                e = Env(fake, world, bot, db, refs, errors)
                # Learning on in #general; alice's messages are learned.
                await answered(
                    await e.run("markov-admin listen", {"channel": world.channel_id}, True)
                )
                rec = await fake.invoke(
                    world.guild_id, world.channel_id, world.user_id, "markov-privacy optin"
                )
                await answered(rec)
                for text in CHAT:
                    await fake.send_message(world.channel_id, world.user_id, text)
                ns = await bot.servers.namespace(world.guild_id)
                for _ in range(200):
                    await bot.servers.flush()
                    if (await bot.store.stats(ns)).messages == len(CHAT):
                        break
                    await asyncio.sleep(0.02)
                assert (await bot.store.stats(ns)).messages == len(CHAT)
                # The bundled corpora the cases use are built on first use (a write): now.
                for corpus in ("tiny-lesson", "ubuntu-irc"):
                    rec = await e.run("markov", {"corpus": corpus}, False)
                    await rec.wait_response(timeout=DEADLINE)
                    await rec.wait_message(timeout=60)
                errors.records.clear()
                yield e
    finally:
        logging.getLogger().removeHandler(errors)


# ---------------------------------------------------------------------- the tests


async def test_the_table_covers_every_typable_option() -> None:
    """Each option a member can type into appears in the table (channel/user pickers too)."""
    covered = {(c.command, name) for c in CASES for name in c.options}
    wanted = {
        ("markov", o)
        for o in ("start", "temp", "length", "seed", "top_k", "top_p", "user", "channel", "corpus")
    }
    wanted |= {("markov-explain", o) for o in ("word", "temp", "top_k", "top_p", "corpus")}
    wanted |= {("markov-compare", o) for o in ("start", "temps", "seed", "corpus")}
    wanted |= {("markov-step", o) for o in ("start", "temp", "seed", "corpus")}
    wanted |= {
        ("markov-admin chatter", "chance"),
        ("markov-admin retention", "days"),
        ("markov-admin backfill", "limit"),
        ("markov-admin corpus-upload", "name"),
        ("markov-admin corpus-upload", "file"),
        ("markov-admin corpus-delete", "name"),
    }
    assert wanted <= covered, wanted - covered
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


async def test_every_string_option_declares_a_max_length(env: Env) -> None:
    """Discord enforces max_length; an option without one accepts 6,000 characters."""
    missing = []

    def walk(options: list[dict[str, Any]], path: str) -> None:
        for o in options or []:
            if o["type"] in (1, 2):
                walk(o.get("options") or [], f"{path} {o['name']}")
            elif o["type"] == 3 and not o.get("choices"):
                limit = int(o.get("max_length", DISCORD_STRING_MAX + 1))
                if not 0 < limit <= DISCORD_STRING_MAX:
                    missing.append(f"/{path} {o['name']}")

    for command in env.fake.commands():
        walk(command.get("options") or [], command["name"])
    assert not missing, f"string options without max_length: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input(env: Env, case: Case) -> None:
    fake = env.fake
    before = snapshot(env.db)
    errors_before = len(env.errors.records)
    interactions_before = len(fake.interactions)
    options = env.resolve(case.options)

    if case.expect == "refused":
        with pytest.raises(FakeDiscordError, match=r"Discord enforces|only accepts|STRING|INTEGER"):
            await env.run(case.command, options, case.admin)
        assert len(fake.interactions) == interactions_before, "Discord would not have sent it"
        assert snapshot(env.db) == before
        return

    rec = await env.run(case.command, options, case.admin)
    message = await answered(rec)
    if case.wait_for is not None:
        await fake.wait_for(
            lambda: case.wait_for in rec.content, timeout=30, what=f"{case.wait_for!r} in the reply"
        )
        message = rec.latest or message
    text = visible_text(message)
    leaked = [marker for marker in LEAKS if marker in text]
    assert not leaked, f"the reply shows {leaked}: {text[:500]!r}"
    if case.reply is not None:
        assert case.reply in text, text
    if case.expect == "rejected":
        assert rec.ephemeral, f"an error reply should be ephemeral: {text!r}"
        assert not message.get("embeds"), f"expected a one-line refusal, got {text!r}"
    else:
        assert text.strip(), "an empty answer"

    after = snapshot(env.db)
    if not case.changes_db:
        assert after == before, "the database changed"
    logged = env.errors.records[errors_before:]
    assert not logged, "logged errors: " + "; ".join(r.getMessage() for r in logged)
    assert not fake.bot_errors, fake.bot_errors
    fake.assert_no_mentions_allowed()
    assert not fake.pings()


#: Text that a reply quoting it unescaped would show as a ping and bold; and how an
#: escaped quote of it reads (a zero-width space after the @, backslashes before the *).
ECHOED = "@everyone **x**"
ESCAPED = "@\u200beveryone \\*\\*x\\*\\*"
ECHOES = [
    ("markov", {"corpus": ECHOED}, False, f"There is no corpus called “{ESCAPED}”"),
    ("markov", {"start": ECHOED}, False, ESCAPED),
    ("markov-explain", {"word": ECHOED}, False, ESCAPED),
    ("markov-compare", {"start": ECHOED}, False, ESCAPED),
    ("markov-step", {"corpus": ECHOED}, False, f"There is no corpus called “{ESCAPED}”"),
    ("markov", {"user": Ref("odd")}, False, f"{ESCAPED} hasn't agreed to be imitated"),
    (
        "markov-admin corpus-delete",
        {"name": ECHOED},
        True,
        f"This server has no uploaded corpus called “{ESCAPED}”",
    ),
]


@pytest.mark.parametrize(
    ("command", "options", "admin", "expected"),
    ECHOES,
    ids=[f"{c}:{','.join(o)}" for c, o, _, _ in ECHOES],
)
async def test_error_replies_quote_the_member_escaped(
    env: Env, command: str, options: dict[str, Any], admin: bool, expected: str
) -> None:
    rec = await env.run(command, env.resolve(options), admin)
    message = await answered(rec)
    content = str(message.get("content") or "")
    assert rec.ephemeral
    assert expected in content, content
    assert "@everyone" not in content and "**x**" not in content, content


AUTOCOMPLETE = [
    (command, option, name, value)
    for command, option in [
        ("markov", "start"),
        ("markov", "corpus"),
        ("markov-explain", "word"),
        ("markov-compare", "start"),
        ("markov-step", "corpus"),
    ]
    for name, value in [("empty", ""), ("max", "x" * 32), *WEIRD.items()]
]


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [(c, o, v) for c, o, _, v in AUTOCOMPLETE],
    ids=[f"{c}:{o}={n}" for c, o, n, _ in AUTOCOMPLETE],
)
async def test_autocomplete_with_odd_text(env: Env, command: str, option: str, value: str) -> None:
    """What a member types is sent on every keystroke: choices (maybe none), never an error."""
    before = snapshot(env.db)
    errors_before = len(env.errors.records)
    choices = await env.fake.autocomplete(
        env.world.guild_id, env.world.channel_id, env.world.user_id, command, option, value
    )
    assert isinstance(choices, list) and len(choices) <= 25
    for choice in choices:
        assert 1 <= len(choice["name"]) <= 100 and len(str(choice["value"])) <= 100
    assert snapshot(env.db) == before
    assert env.errors.records[errors_before:] == []
