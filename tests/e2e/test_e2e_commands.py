"""End-to-end: every command's reply — /markov, /markov-explain (and its buttons),
/markov-compare, /markov-stats, the corpus option, autocomplete, and the error paths."""

from __future__ import annotations

import logging
import math
import re
import sqlite3

import aiohttp
import pytest

from bot.app import MarkovBot
from bot.core.tokenize import tokenize
from fake_discord import (
    PERM_MANAGE_GUILD,
    CommandNotPermitted,
    FakeDiscord,
    FakeDiscordError,
    InteractionRecord,
    fake_file,
)
from tests.e2e.support import E2E

TEXTS = ["the cat sat on the mat", "the cat ran", "the dog sat"]
VOCABULARY = {t for text in TEXTS for t in tokenize(text)}
CALLBACK_UPDATE_MESSAGE = 7


async def taught(e2e: E2E, bot: MarkovBot, texts: list[str] = TEXTS) -> None:
    """#general listened, alice opted in, and ``texts`` learned from her, one after the
    other: a word's id (its first-learned rank) breaks ties between equally frequent
    candidates, and events' handlers, like a catch-up's flush, can otherwise reorder them."""
    await e2e.enable_learning(e2e.world.user_id)
    for text in texts:
        await e2e.wait_learned(bot, await e2e.say(e2e.world.channel_id, e2e.world.user_id, text))


def embed_of(rec: InteractionRecord) -> dict:
    [embed] = rec.embeds
    return embed


# ---------------------------------------------------------------------- /markov


async def test_markov_footer_and_same_seed_same_text(e2e: E2E) -> None:
    async with e2e.start() as bot:
        await taught(e2e, bot)
        alice = e2e.world.user_id
        first = await e2e.invoke(alice, "markov", {"start": "the", "temp": 0.5, "seed": 42})
        assert not first.ephemeral
        embed = embed_of(first)
        assert embed["footer"]["text"] == "T = 0.5 · seed 42 · context of 2 words · this server"
        words = embed["description"].split()
        assert words[0] == "the" and set(words) <= VOCABULARY

        again = await e2e.invoke(alice, "markov", {"start": "the", "temp": 0.5, "seed": 42})
        assert embed_of(again)["description"] == embed["description"]

        # Without a seed the footer reports the one used, and it reproduces the text.
        fresh = embed_of(await e2e.invoke(alice, "markov", {"temp": 1.5}))
        seed = int(re.search(r"· seed (\d+) ·", fresh["footer"]["text"]).group(1))  # type: ignore[union-attr]
        assert fresh["footer"]["text"].startswith("T = 1.5 · seed ")
        replay = await e2e.invoke(alice, "markov", {"temp": 1.5, "seed": seed})
        assert embed_of(replay)["description"] == fresh["description"]

        greedy = embed_of(await e2e.invoke(alice, "markov", {"start": "the dog", "temp": 0}))
        assert greedy["description"] == "the dog sat"
        # Greedy decoding draws nothing: no seed is shown for it.
        assert greedy["footer"]["text"] == "T = 0 (greedy) · context of 2 words · this server"


async def test_markov_user_and_channel_options(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    async with e2e.start() as bot:
        await taught(e2e, bot)
        refused = await e2e.invoke(bob, "markov", {"user": bob})
        assert "bob hasn't agreed to be imitated" in refused.content
        assert "`/markov-privacy optin`" in refused.content
        assert refused.embeds == []

        imitated = embed_of(await e2e.invoke(bob, "markov", {"user": w.user_id, "seed": 3}))
        assert imitated["footer"]["text"].endswith("· alice")
        assert set(imitated["description"].split()) <= VOCABULARY

        channel = embed_of(await e2e.invoke(bob, "markov", {"channel": w.channel_id}))
        assert channel["footer"]["text"].endswith("· #general")

        await e2e.invoke(bob, "markov-privacy optin")
        silent = await e2e.invoke(bob, "markov", {"user": bob})
        assert silent.content == "I haven't learned any messages from that selection yet."


async def test_markov_show_work_has_the_trace(e2e: E2E) -> None:
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(
            e2e.world.user_id, "markov", {"start": "the dog", "temp": 0, "show_work": True}
        )
        embed = embed_of(rec)
        assert embed["description"] == "the dog sat"
        [field] = embed["fields"]
        assert field["name"] == "How likely each word was"
        trace = field["value"]
        assert trace.startswith("```ansi\n") and trace.endswith("```")
        plain = re.sub(r"\x1b\[\d+m", "", trace)
        assert re.search(r"sat\s+100\.0%\s+1/1\s+← the dog", plain), plain
        assert max(len(line) for line in plain.strip("`").splitlines()) <= 40, plain
        assert "learned model, T = 1: perplexity 1.00" in plain
        assert "as sampled: perplexity 1.00\n  (sampled at T = 0 (greedy))" in plain


# ---------------------------------------------------------------------- /markov-explain


def table_rows(description: str) -> dict[str, tuple[int, float, float, float, float]]:
    """token → (count, p, ln p, ln p ÷ T, P(T) in %) parsed from the explanation table:
    two phone-wide blocks (learned numbers, then the pipeline's) joined by rank."""
    table = description.split("```")[1].strip("\n")
    learned, sampled = table.split("\n\n")
    assert max(len(line) for line in table.splitlines()) <= 40, table
    first: dict[int, tuple[str, int, float, float]] = {}
    for line in learned.splitlines():
        m = re.fullmatch(r"\s*(\d+) (\S+)\s+(\d+)\s+(\S+)\s+(\S+)", line)
        if m:
            rank, token, count, p, logit = m.groups()
            first[int(rank)] = (token, int(count), float(p), float(logit))
    rows = {}
    for line in sampled.splitlines():
        m = re.fullmatch(r"\s*(\d+) (\S+)\s+(?:(\S+)\s+)?(\S+)\s+([\d.]+)%(?:\s+\S+)?", line)
        if m:
            rank, _, _adjusted, scaled, prob = m.groups()
            token, count, p, logit = first[int(rank)]
            # T = 0: no ÷T; a banned word: −∞
            scaled_value = {"—": math.nan, "-∞": -math.inf}.get(scaled) or float(scaled)
            rows[token] = (count, p, logit, scaled_value, float(prob))
    assert len(rows) == len(first), table
    return rows


def hand_calculation(counts: dict[str, int], t: float) -> dict[str, tuple[float, ...]]:
    """count ÷ total, its log, divided by T, and the softmax of that (T = 0: all on the top)."""
    total = sum(counts.values())
    p = {w: c / total for w, c in counts.items()}
    if t == 0:
        top = max(counts.values())
        winners = [w for w, c in counts.items() if c == top]
        prob = {w: (100.0 / len(winners) if w in winners else 0.0) for w in counts}
    else:
        weights = {w: math.exp(math.log(q) / t) for w, q in p.items()}
        z = sum(weights.values())
        prob = {w: 100 * x / z for w, x in weights.items()}
    return {w: (p[w], math.log(p[w]), prob[w]) for w in counts}


def assert_table(description: str, counts: dict[str, int], t: float) -> None:
    rows = table_rows(description)
    assert set(rows) == set(counts)
    expected = hand_calculation(counts, t)
    for word, (count, p, logit, scaled, prob) in rows.items():
        want_p, want_logit, want_prob = expected[word]
        assert count == counts[word]
        assert p == pytest.approx(want_p, abs=0.0006)
        assert logit == pytest.approx(want_logit, abs=0.006)
        if t > 0:
            assert scaled == pytest.approx(want_logit / t, abs=0.006)
        assert prob == pytest.approx(want_prob, abs=0.06), (word, t)
    # Most likely first.
    assert [rows[w][0] for w in rows] == sorted((rows[w][0] for w in rows), reverse=True)


async def test_explain_numbers_match_a_hand_calculation_and_buttons_redraw_in_place(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    after_the = {"cat": 2, "mat": 1, "dog": 1}  # "the cat" ×2, "the mat", "the dog"
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov-explain", {"word": "the", "temp": 0.5})
        assert not rec.ephemeral
        embed = embed_of(rec)
        assert embed["title"] == "What comes after “the”? · T = 0.5"
        assert "Context “the”: 3 candidates seen 4 times." in embed["description"]
        assert_table(embed["description"], after_the, 0.5)
        assert rows_probability(embed) == pytest.approx({"cat": 66.7, "mat": 16.7, "dog": 16.7})
        assert rec.custom_ids() == ["t-half", "t-double", "t-zero", "t-one", "knob"]

        # The chart is attached and shown in the embed.
        [chart] = rec.attachments
        assert chart["filename"] == "explain.png"
        assert embed["image"]["url"] == "attachment://explain.png"
        async with aiohttp.ClientSession() as session, session.get(chart["url"]) as resp:
            assert (await resp.read()).startswith(b"\x89PNG")

        message_id = rec.original_message_id
        for custom_id, label, t in [
            ("t-half", "0.25", 0.25),
            ("t-double", "0.5", 0.5),
            ("t-zero", "0 (greedy)", 0.0),
            ("t-double", "0.1", 0.1),
            ("t-one", "1", 1.0),
        ]:
            click = await e2e.click(rec, custom_id, w.user_id)
            assert click.response_type == CALLBACK_UPDATE_MESSAGE
            assert click.original_message_id == message_id
            shown = fake.message(message_id)["embeds"][0]
            assert shown["title"] == f"What comes after “the”? · T = {label}"
            assert_table(shown["description"], after_the, t)
        assert len(fake.bot_messages(w.channel_id)) == 1  # redrawn in place, never re-sent

        refused = await e2e.click(rec, "t-zero", bob)
        assert refused.ephemeral
        assert refused.content.startswith("Only the person who asked (or an admin)")
        assert fake.message(message_id)["embeds"][0]["title"].endswith("T = 1")

        by_admin = await e2e.click(rec, "t-half", w.admin_id)
        assert by_admin.response_type == CALLBACK_UPDATE_MESSAGE
        assert fake.message(message_id)["embeds"][0]["title"].endswith("T = 0.5")


def rows_probability(embed: dict) -> dict[str, float]:
    return {w: row[4] for w, row in table_rows(embed["description"]).items()}


async def test_explain_of_how_messages_start(e2e: E2E) -> None:
    async with e2e.start() as bot:
        await taught(e2e, bot)
        embed = embed_of(await e2e.invoke(e2e.world.user_id, "markov-explain"))
        assert embed["title"] == "What comes first (start of a message)? · T = 1"
        assert "<start>" not in str(embed)
        assert "Context (start of a message): 1 candidate seen 3 times." in embed["description"]
        assert embed["footer"]["text"] == "this server · context of 1 word"
        assert_table(embed["description"], {"the": 3}, 1.0)


# ---------------------------------------------------------------------- /markov-compare


async def test_compare_defaults_errors_and_cooldown(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov-compare", {"start": "the"})
        embed = embed_of(rec)
        names = [f["name"] for f in embed["fields"]]
        assert len(names) == 3
        for name, t in zip(names, ["0.1", "0.5", "1"], strict=True):
            assert re.fullmatch(rf"T = {re.escape(t)} · perplexity \d+\.\d\d", name), name
        assert all(f["value"].startswith("the") for f in embed["fields"])
        assert embed["description"].startswith("Perplexity under the learned model (T = 1)")
        assert re.fullmatch(r"seed \d+ · this server", embed["footer"]["text"])

        two = embed_of(await e2e.invoke(w.admin_id, "markov-compare", {"temps": "0, 2", "seed": 9}))
        assert [f["name"].split(" · ")[0] for f in two["fields"]] == ["T = 0 (greedy)", "T = 2"]
        assert two["footer"]["text"] == "seed 9 · this server"

        for user, temps, message in [
            (w.admin_id, "hot", "“hot” is not a number."),
            (w.admin_id, "0.1,9", "Temperature must be between 0 and 5"),
            (w.user_id, "1,1,1,1,1,1,1", "Compare at most 6 temperatures at once."),
            (w.user_id, "-1", "Temperature must be between 0 and 5"),
        ]:
            bad = await e2e.invoke(user, "markov-compare", {"temps": temps})
            assert bad.ephemeral and bad.content.startswith(message), bad.content
            assert bad.embeds == []

        # Three compares in ten seconds is the limit per member (alice has used three).
        slow = await e2e.invoke(w.user_id, "markov-compare")
        assert slow.ephemeral, slow.content
        assert re.fullmatch(r"Slow down a little: try again in \d+ s\.", slow.content)


# ---------------------------------------------------------------------- /markov-stats


async def test_stats(e2e: E2E) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        empty = embed_of(await e2e.invoke(w.user_id, "markov-stats"))
        assert {f["name"]: f["value"] for f in empty["fields"]}["Messages"] == "0"
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov-stats")
        assert not rec.ephemeral
        embed = embed_of(rec)
        assert embed["title"] == "What I have learned here"
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Messages"] == "3"
        assert fields["Words"] == "12 (7 different)"
        assert fields["Members"] == "1"
        assert fields["Context"] == "up to 2 words"
        assert re.fullmatch(r"\d+\.\d MB", fields["Database"])
        assert fields["Top words"].startswith("the (4), ")
        assert "cat (2)" in fields["Top words"] and "dog (1)" in fields["Top words"]
        assert fields["Channels"] == f"<#{w.channel_id}>: 3"


# ---------------------------------------------------------------------- corpus


async def test_corpus_option_uses_the_bundled_text_and_learns_nothing_here(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        nothing = await e2e.invoke(w.user_id, "markov")
        assert nothing.content.startswith("I haven't learned anything here yet.")

        choices = await fake.autocomplete(
            w.guild_id, w.channel_id, w.user_id, "markov", "corpus", "goose"
        )
        assert [c["value"] for c in choices] == ["mother-goose"]

        rec = await e2e.invoke(w.user_id, "markov", {"corpus": "mother-goose", "seed": 5})
        embed = embed_of(rec)
        assert embed["footer"]["text"].startswith("T = 1 · seed 5 · ")
        assert embed["footer"]["text"].endswith("· The Real Mother Goose")
        assert embed["description"] not in ("", "…")

        explained = embed_of(
            await e2e.invoke(w.user_id, "markov-explain", {"corpus": "mother-goose"})
        )
        assert explained["footer"]["text"].startswith("The Real Mother Goose")
        assert table_rows(explained["description"])

        stats = await bot.store.stats(await e2e.ns(bot))
        assert (stats.messages, stats.vocabulary) == (0, 0)
        server = embed_of(await e2e.invoke(w.user_id, "markov-stats"))
        assert {f["name"]: f["value"] for f in server["fields"]}["Messages"] == "0"

        unknown = await e2e.invoke(w.user_id, "markov", {"corpus": "no-such-corpus"})
        assert unknown.content.startswith("There is no corpus called “no-such-corpus”")


# ---------------------------------------------------------------------- autocomplete


async def test_autocomplete_most_frequent_first_at_most_25_this_server_only(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    other = fake.add_guild("Elsewhere")
    other_channel = fake.add_text_channel(other["id"], "general")
    fake.add_member(other["id"], w.user_id)
    # word00 said 30 times, word01 29 times, ..., word29 once.
    texts = [" ".join([f"word{i:02d}"] * (30 - i)) for i in range(30)]
    async with e2e.start() as bot:
        await taught(e2e, bot, texts)
        owner = int(other["owner_id"])
        await e2e.enable_learning(
            w.user_id, guild=other["id"], channel=other_channel["id"], admin=owner
        )
        elsewhere = await e2e.say(other_channel["id"], w.user_id, "wordy " * 50 + "wordsmith")
        await e2e.wait_learned(bot, elsewhere, guild=other["id"])

        async def complete(command: str, option: str, typed: str) -> list[str]:
            choices = await fake.autocomplete(
                w.guild_id, w.channel_id, w.user_id, command, option, typed
            )
            assert all(c["name"] == c["value"] for c in choices)
            return [c["value"] for c in choices]

        ranked = [f"word{i:02d}" for i in range(30)]
        assert await complete("markov", "start", "word") == ranked[:25]
        assert await complete("markov", "start", "") == ranked[:25]
        assert await complete("markov", "start", "WORD1") == ranked[10:20]
        assert await complete("markov", "start", "word00 word2") == [
            f"word00 {w}" for w in ranked[20:30]
        ]
        assert await complete("markov-explain", "word", "word0") == ranked[:10]
        assert await complete("markov-compare", "start", "word29") == ["word29"]
        assert await complete("markov", "start", "wordy") == []
        assert await complete("markov", "start", "zzz") == []

        there = await fake.autocomplete(
            other["id"], other_channel["id"], w.user_id, "markov", "start", "wor"
        )
        assert [c["value"] for c in there] == ["wordy", "wordsmith"]


# ---------------------------------------------------------------------- admin rights


async def test_admin_commands_refuse_members_without_manage_server(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    alice = w.user_id
    mods = fake.add_role(w.guild_id, "mods", permissions=PERM_MANAGE_GUILD)
    moderator = int(fake.add_user("mod")["id"])
    fake.add_member(w.guild_id, moderator, permissions=[mods["id"]])
    async with e2e.start() as bot:
        # Discord hides the command from her (default_member_permissions) ...
        with pytest.raises(CommandNotPermitted):
            await fake.invoke(w.guild_id, w.channel_id, alice, "markov-admin status")
        # ... but a crafted interaction still reaches the bot, which checks for itself.
        for command, options in [
            ("markov-admin status", {}),
            ("markov-admin listen", {"channel": w.channel_id}),
            ("markov-admin consent", {"mode": "opt-out"}),
            ("markov-admin backfill", {"channel": w.channel_id, "limit": 10}),
            ("markov-admin purge", {}),
        ]:
            rec = await e2e.invoke(alice, command, options, enforce_default_permissions=False)
            assert rec.ephemeral
            assert rec.content == "You need the Manage Server permission for that."
            assert rec.components == []
        config = await bot.servers.guilds.config(w.guild_id)
        assert config.listened == frozenset() and config.consent == "opt-in"
        assert await bot.servers.guilds.backfill(w.guild_id, w.channel_id) is None
        assert fake.requests_matching("GET", rf"/channels/{w.channel_id}/messages") == []

        # Manage Server through any role is enough.
        rec = await e2e.invoke(moderator, "markov-admin status")
        assert rec.content.startswith("**Listening in:** none yet"), rec.content


async def test_purge_asks_the_same_admin_to_confirm(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        ask = await e2e.invoke(w.admin_id, "markov-admin purge")
        assert ask.ephemeral and ask.content.startswith("This deletes every message and word")
        confirm, _cancel = ask.custom_ids()
        other = await e2e.click(ask, confirm, w.user_id)
        assert other.ephemeral and other.content == "This isn't your confirmation."
        assert (await bot.store.stats(await e2e.ns(bot))).messages == 3

        done = await e2e.click(ask, confirm, w.admin_id)
        await done.wait_message()
        await fake.wait_for(lambda: ask.content.startswith("Done:"), what="the purge")
        assert ask.content == "Done: forgot 3 messages. Learning settings are unchanged."
        await e2e.assert_model(bot, [])
        # Settings are kept: alice is still learned.
        await e2e.wait_learned(bot, await e2e.say(w.channel_id, w.user_id, "fresh start"))


# ---------------------------------------------------------------------- errors


async def test_user_errors_get_a_clear_sentence(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov", {"start": "zebra"})
        assert rec.content == "I never learned “zebra”."
        rec = await e2e.invoke(w.user_id, "markov", {"start": "caat"})
        assert rec.content == "I never learned “caat”. Did you mean: cat?"
        rec = await e2e.invoke(w.user_id, "markov", {"start": "`code only`"})
        assert rec.content == "The start text has no words I could use (only code or symbols)."
        rec = await e2e.invoke(w.user_id, "markov-explain", {"word": "zebra"})
        assert rec.content == "I never learned “zebra”."
        # What the member typed is quoted as typed: no markdown, no live-looking mention.
        rec = await e2e.invoke(w.user_id, "markov", {"start": "**loud** __words__ @everyone"})
        assert rec.content == (
            "I never learned “\\*\\*loud\\*\\* \\_\\_words\\_\\_ @\u200beveryone”."
        )
        # Out-of-range numbers never reach the bot: Discord validates registered ranges.
        for option, value in [("top_k", 10_001), ("top_p", 0), ("length", 101), ("temp", -1)]:
            with pytest.raises(FakeDiscordError, match="Discord enforces this"):
                await fake.invoke(w.guild_id, w.channel_id, w.user_id, "markov", {option: value})


async def test_user_errors_after_a_public_defer_are_ephemeral(e2e: E2E, fake: FakeDiscord) -> None:
    """/markov defers publicly ("thinking…"); an error must not land in that public message."""
    w = e2e.world
    bob = e2e.member("bob")
    async with e2e.start() as bot:
        await taught(e2e, bot)
        for command, options in [
            ("markov", {"start": "zebra"}),
            ("markov", {"user": bob}),
            ("markov-explain", {"word": "zebra"}),
            ("markov-compare", {"start": "zebra"}),
        ]:
            rec = await e2e.invoke(w.user_id, command, options)
            await fake.wait_for(lambda rec=rec: rec.followups, what="the error follow-up")
            assert rec.ephemeral, (command, rec.content)
            assert rec.content.startswith(("I never learned", "bob hasn't agreed")), rec.content
            assert rec.original is None  # the public placeholder is gone
        assert fake.bot_messages(w.channel_id) == []  # nothing public in the channel


async def test_unexpected_errors_get_an_apology(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the disk caught fire")

        monkeypatch.setattr(bot.store, "stats", broken)
        with caplog.at_level(logging.ERROR):
            rec = await e2e.invoke(w.user_id, "markov-stats")
        assert rec.ephemeral
        assert rec.content == "Sorry, something went wrong on my side. It has been logged."
        [logged] = [r for r in caplog.records if r.getMessage().startswith("/markov-stats failed")]
        assert logged.exc_info and "the disk caught fire" in str(logged.exc_info[1])
        monkeypatch.undo()

        # The reading connection dies behind the bot's back (every read raises what a closed
        # sqlite3 connection raises): /markov (deferred) still answers.
        async def closed(*args: object, **kwargs: object) -> None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

        reader = type(bot.store.reader(await e2e.ns(bot)))
        monkeypatch.setattr(reader, "run", closed)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            rec = await e2e.invoke(w.user_id, "markov", {"start": "the"})
        assert rec.content == "Sorry, something went wrong on my side. It has been logged."
        assert rec.embeds == []
        assert any(r.getMessage().startswith("/markov failed") for r in caplog.records)


# ---------------------------------------------------------------------- mentions


async def test_learned_mentions_come_out_inert(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    role = fake.add_role(w.guild_id, "everyone-ish", mentionable=True)
    user = w.admin_id
    raw = ["@everyone", "@here", f"<@{user}>", f"<@!{user}>", f"<@&{role['id']}>"]
    text = f"@everyone look at <@{user}> and <@!{user}> with <@&{role['id']}> now @here"
    async with e2e.start() as bot:
        await taught(e2e, bot, [text])
        rec = await e2e.invoke(w.user_id, "markov", {"start": "@everyone", "temp": 0})
        shown = embed_of(rec)["description"]
        assert shown.replace("\u200b", "") == text  # all of it, and nothing live
        for mention in raw:
            assert mention not in shown, mention
        assert "@\u200beveryone" in shown and "@\u200bhere" in shown

        explained = embed_of(await e2e.invoke(w.user_id, "markov-explain", {"word": "look at"}))
        stats = embed_of(await e2e.invoke(w.user_id, "markov-stats"))
        compared = embed_of(await e2e.invoke(w.user_id, "markov-compare", {"start": "@everyone"}))
        for embed in (explained, stats, compared):
            blob = str(embed)
            for mention in raw:
                assert mention not in blob, (mention, blob)

        # Mentioning the bot makes it answer in the channel, pinging no one.
        trigger = await fake.send_message(w.channel_id, w.user_id, f"<@{fake.bot_user_id}> talk")
        reply = await fake.wait_for_bot_message(w.channel_id, after=trigger["id"])
        assert reply["message_reference"]["message_id"] == trigger["id"]
        for mention in raw:
            assert mention not in reply["content"]

        assert fake.pings() == []
        fake.assert_no_mentions_allowed()


async def test_learned_links_and_spaceless_words_come_out_as_discord_shows_them(
    e2e: E2E,
) -> None:
    w = e2e.world
    texts = [
        "[click me](https://example.com/x) or [Foo](https://en.wikipedia.org/wiki/Foo_(bar))",
        "今日はいい天気ですね。明日も晴れるといいな",
    ]
    async with e2e.start() as bot:
        await taught(e2e, bot, texts)
        rec = await e2e.invoke(w.user_id, "markov", {"start": "[click", "temp": 0})
        assert embed_of(rec)["description"] == (
            "click me (<https://example.com/x>) or Foo (<https://en.wikipedia.org/wiki/Foo_(bar)>)"
        )
        # Learned as words (so "天気" can start a message), written back without spaces.
        rec = await e2e.invoke(w.user_id, "markov", {"start": "天気", "temp": 0})
        assert embed_of(rec)["description"] == "天気ですね。明日も晴れるといいな"


# ---------------------------------------------------------------------- two servers


async def test_two_servers_never_see_each_others_words(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    other = fake.add_guild("Elsewhere")
    there = int(fake.add_text_channel(other["id"], "general")["id"])
    carol = int(fake.add_user("carol")["id"])
    fake.add_member(other["id"], carol)
    fake.add_member(other["id"], w.user_id)  # alice is in both, opted in only here
    here_texts = ["the apple is red", "the amber glows", "the anchor sinks"]
    there_texts = ["the bison roams", "the bramble grows", "the bolt strikes"]
    here_words = {t for s in here_texts for t in tokenize(s)}
    there_words = {t for s in there_texts for t in tokenize(s)} - {"the"}
    async with e2e.start() as bot:
        await taught(e2e, bot, here_texts)
        await e2e.enable_learning(carol, guild=other["id"], channel=there, admin=other["owner_id"])
        learned = await e2e.say(there, carol, *there_texts)
        not_consented = await e2e.say(there, w.user_id, "alice has no consent over there")
        await e2e.wait_learned(bot, learned, guild=other["id"])
        assert await e2e.known(bot, [int(not_consented[0]["id"])], other["id"]) == set()
        await e2e.assert_model(bot, here_texts)
        await e2e.assert_model(bot, there_texts, guild=other["id"])

        for guild, channel, user, mine, theirs in [
            (w.guild_id, w.channel_id, w.user_id, here_words, there_words),
            (int(other["id"]), there, carol, there_words | {"the"}, here_words - {"the"}),
        ]:
            choices = await fake.autocomplete(guild, channel, user, "markov", "start", "")
            assert {c["value"] for c in choices} == mine
            for seed in range(4):
                rec = await e2e.invoke(
                    user, "markov", {"temp": 2, "seed": seed}, guild=guild, channel=channel
                )
                assert set(embed_of(rec)["description"].split()) <= mine
            rec = await e2e.invoke(
                user, "markov-explain", {"word": "the"}, guild=guild, channel=channel
            )
            assert set(table_rows(embed_of(rec)["description"])) <= mine
            rec = await e2e.invoke(user, "markov-stats", guild=guild, channel=channel)
            fields = {f["name"]: f["value"] for f in embed_of(rec)["fields"]}
            top = {re.sub(r" \(\d+\)$", "", x) for x in fields["Top words"].split(", ")}
            assert top == mine
            assert fields["Messages"] == "3"
            rec = await e2e.invoke(
                user, "markov-explain", {"word": sorted(theirs)[0]}, guild=guild, channel=channel
            )
            assert rec.content.startswith("I never learned")

        # Forgetting over there leaves this server untouched.
        rec = await e2e.forget_me(carol, guild=other["id"], channel=there)
        assert rec.content == "Forgot 3 of your messages from this server's model."
        await e2e.assert_model(bot, [], guild=other["id"])
        await e2e.assert_model(bot, here_texts)


# ---------------------------------------------------------------------- uploaded corpora


async def test_uploaded_corpus_belongs_to_its_server(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    other = fake.add_guild("Elsewhere")
    there = int(fake.add_text_channel(other["id"], "general")["id"])
    fake.add_member(other["id"], w.user_id)
    lesson = "the sun is hot\nthe moon is cold\n\nthe moon is cold\n"
    async with e2e.start() as bot:
        rec = await e2e.invoke(
            w.admin_id,
            "markov-admin corpus-upload",
            {"name": "Physics", "file": fake_file("physics.txt", lesson)},
        )
        assert rec.ephemeral
        assert rec.content == (
            "Corpus “physics” ready: 3 lines, 12 words. Use it with `corpus:physics`."
        )
        for data, error in [
            (b"\x00\x01binary", "That looks like a binary file"),
            (b"caf\xe9 latin-1", "That file isn't UTF-8 text (bad byte at position 3)."),
            (b"\n  \n", "That file has no text lines."),
        ]:
            bad = await e2e.invoke(
                w.admin_id,
                "markov-admin corpus-upload",
                {"name": "bad", "file": fake_file("bad.txt", data)},
            )
            assert bad.content.startswith(error), bad.content
        taken = await e2e.invoke(
            w.admin_id,
            "markov-admin corpus-upload",
            {"name": "burns", "file": fake_file("x.txt", "words")},
        )
        assert taken.ephemeral and taken.content.startswith("Use a new name")

        rec = await e2e.invoke(
            w.user_id, "markov", {"corpus": "physics", "start": "the", "temp": 0}
        )
        assert embed_of(rec)["description"] == "the moon is cold"
        assert embed_of(rec)["footer"]["text"].endswith("· physics")
        assert (await bot.store.stats(await e2e.ns(bot))).messages == 0  # not the server model

        here = await fake.autocomplete(
            w.guild_id, w.channel_id, w.user_id, "markov", "corpus", "phys"
        )
        assert [c["value"] for c in here] == ["physics"]
        away = await fake.autocomplete(other["id"], there, w.user_id, "markov", "corpus", "phys")
        assert away == []
        refused = await e2e.invoke(
            w.user_id, "markov", {"corpus": "physics"}, guild=other["id"], channel=there
        )
        assert refused.content.startswith("There is no corpus called “physics”")

        gone = await e2e.invoke(w.admin_id, "markov-admin corpus-delete", {"name": "physics"})
        assert gone.ephemeral and gone.content == "Deleted corpus “physics” (3 lines)."
        rec = await e2e.invoke(w.user_id, "markov", {"corpus": "physics"})
        assert rec.content.startswith("There is no corpus called “physics”")


# ---------------------------------------------------------------------- unknown words


async def test_unknown_words_are_backed_off_over_and_named(e2e: E2E) -> None:
    alice = e2e.world.user_id
    async with e2e.start() as bot:
        await taught(e2e, bot)
        # A typed word never learned is named, escaped as typed; the known suffix is used.
        rec = await e2e.invoke(alice, "markov-explain", {"word": "b_a_n sat"})
        embed = embed_of(rec)
        assert embed["description"].startswith("Never saw “b\\_a\\_n”; using “sat”.\n")
        assert embed["title"] == "What comes after “sat”? · T = 1"
        assert_table(embed["description"], {"on": 1, "<end>": 1}, 1.0)

        g = embed_of(await e2e.invoke(alice, "markov", {"start": "zzz the dog", "seed": 1}))
        assert g["description"] == "the dog sat"
        assert {
            "name": "Unknown words",
            "value": "Never saw “zzz”; using “the dog”.",
            "inline": True,
        } in g["fields"]

        compared = embed_of(await e2e.invoke(alice, "markov-compare", {"start": "qq the"}))
        assert compared["fields"][0] == {
            "name": "Unknown words",
            "value": "Never saw “qq”; using “the”.",
            "inline": True,
        }

        step = embed_of(await e2e.invoke(alice, "markov-step", {"start": "@everyone the"}))
        [note] = [f for f in step["fields"] if f["name"] == "Unknown words"]
        assert note["value"] == "Never saw “@\u200beveryone”; using “the”."

        # Nothing known before the choice: the clear error, naming the word.
        bad = await e2e.invoke(alice, "markov-explain", {"word": "the zebra"})
        assert bad.ephemeral and bad.content.startswith("I never learned “zebra”."), bad.content
