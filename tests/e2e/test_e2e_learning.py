"""End-to-end: what the bot learns, from whom, and how exactly it forgets.

Every "forgot exactly" assertion compares the stored model with the model a fresh learner
builds from the messages that should remain (:meth:`E2E.assert_model`), and checks the
stored counts against a recount of the stored messages (:meth:`E2E.snapshot`).
"""

from __future__ import annotations

import pytest

from bot.app import MarkovBot, open_servers
from fake_discord import FakeDiscord, running_bot
from tests.e2e.support import E2E, cached, eventually, ids_of, on_ready_finished

pytestmark = pytest.mark.both_backends  # the same behaviour on SQLite and PostgreSQL

SYSTEM_MEMBER_JOIN = 7
REPLY = 19


async def test_learns_listened_channels_and_their_threads_only(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    other = fake.add_text_channel(w.guild_id, "other")
    other_thread = fake.add_thread(other["id"], "other-thread")
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        ignored = await e2e.say(other["id"], w.user_id, "gamma in another channel")
        ignored += await e2e.say(other_thread["id"], w.user_id, "delta in its thread")
        learned = await e2e.say(w.channel_id, w.user_id, "alpha in general")
        learned += await e2e.say(w.thread_id, w.user_id, "beta in a thread of general")
        await e2e.wait_learned(bot, learned)
        await e2e.flush(bot)
        assert await e2e.known(bot, ids_of(ignored)) == set()
        await e2e.assert_model(bot, ["alpha in general", "beta in a thread of general"])
        stats = await bot.store.stats(await e2e.ns(bot))
        assert stats.channels == [(w.channel_id, 2)]  # a thread counts as its channel


async def test_ignores_bots_webhooks_system_messages_and_members_without_consent(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    robot = fake.add_user("robot", bot=True)
    fake.add_member(w.guild_id, robot["id"])
    bob = fake.add_user("bob")
    fake.add_member(w.guild_id, bob["id"])
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        first = (await e2e.say(w.channel_id, w.user_id, "a plain first message"))[0]
        ignored = [
            *await e2e.say(w.channel_id, robot["id"], "beep boop from a bot"),
            *await e2e.say(w.channel_id, None, "hooked words", webhook_id=4242),
            *await e2e.say(w.channel_id, w.user_id, "joined words", type=SYSTEM_MEMBER_JOIN),
            *await e2e.say(w.channel_id, bob["id"], "bob never agreed"),
            *await e2e.say(w.channel_id, w.user_id, "`only code`"),
        ]
        reply = await e2e.say(
            w.channel_id,
            w.user_id,
            "a reply counts",
            type=REPLY,
            message_reference={
                "message_id": first["id"],
                "channel_id": str(w.channel_id),
                "guild_id": str(w.guild_id),
            },
        )
        await e2e.wait_learned(bot, [first, *reply])
        await e2e.flush(bot)
        assert await e2e.known(bot, ids_of(ignored)) == set()
        await e2e.assert_model(bot, ["a plain first message", "a reply counts"])


async def test_consent_modes_and_privacy_status(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    bob = int(fake.add_user("bob")["id"])
    carol = int(fake.add_user("carol")["id"])
    for member in (bob, carol):
        fake.add_member(w.guild_id, member)
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)  # opt-in mode: only alice
        rec = await e2e.invoke(carol, "markov-privacy optout")
        assert rec.ephemeral and rec.content.startswith("I won't learn from your messages")

        rec = await e2e.invoke(bob, "markov-privacy status")
        assert rec.ephemeral
        assert rec.content.startswith(
            "Consent mode here: **opt-in**; your choice: **none yet** — I am not learning from you."
        )
        msgs = await e2e.say(w.channel_id, bob, "bob in opt-in mode")
        msgs += await e2e.say(w.channel_id, carol, "carol in opt-in mode")
        sentinel = await e2e.say(w.channel_id, w.user_id, "alice in opt-in mode")
        await e2e.wait_learned(bot, sentinel)
        assert await e2e.known(bot, ids_of(msgs)) == set()

        rec = await e2e.invoke(w.admin_id, "markov-admin consent", {"mode": "opt-out"})
        assert rec.ephemeral and rec.content == "Consent mode is now **opt-out**."
        learned = await e2e.say(w.channel_id, bob, "bob in opt-out mode")
        ignored = await e2e.say(w.channel_id, carol, "carol in opt-out mode")
        learned += await e2e.say(w.channel_id, w.user_id, "alice in opt-out mode")
        await e2e.wait_learned(bot, learned)
        assert await e2e.known(bot, ids_of(ignored)) == set()

        rec = await e2e.invoke(bob, "markov-privacy status")
        assert "your choice: **none yet** — I am learning from you." in rec.content
        assert "Stored: 1 of your messages" in rec.content
        rec = await e2e.invoke(carol, "markov-privacy status")
        assert "your choice: **opted out** — I am not learning from you." in rec.content
        assert "Stored: 0 of your messages" in rec.content

        rec = await e2e.invoke(w.admin_id, "markov-admin status")
        assert rec.ephemeral
        assert f"**Listening in:** <#{w.channel_id}>" in rec.content
        assert "**Consent mode:** opt-out (1 opted in, 1 opted out)" in rec.content
        assert "**Learned:** 3 messages" in rec.content


async def test_optout_stops_learning_and_its_button_forgets(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    bob_texts = ["the cat sat on the mat", "bob likes the mat"]
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id, bob)
        alice_msgs = await e2e.say(w.channel_id, w.user_id, "the cat ran off", "alice likes tea")
        bob_msgs = await e2e.say(w.channel_id, bob, bob_texts[0])
        await e2e.wait_learned(bot, alice_msgs + bob_msgs)

        offer = await e2e.invoke(w.user_id, "markov-privacy optout")
        assert offer.ephemeral
        assert offer.content.startswith("I won't learn from your messages any more.")
        [button] = offer.custom_ids()

        late = await e2e.say(w.channel_id, w.user_id, "alice after opting out")
        bob_msgs += await e2e.say(w.channel_id, bob, bob_texts[1])
        await e2e.wait_learned(bot, bob_msgs)
        assert await e2e.known(bot, ids_of(late)) == set()
        await e2e.assert_model(bot, ["the cat ran off", "alice likes tea", *bob_texts])

        refused = await e2e.click(offer, button, bob)
        assert refused.ephemeral and refused.content == "This button isn't yours."
        assert await e2e.known(bot, ids_of(alice_msgs)) == set(ids_of(alice_msgs))

        done = await e2e.click(offer, button, w.user_id)
        assert done.content == "Forgot 2 of your messages. You are opted out."
        assert fake.message(offer.original_message_id)["components"] == []
        await e2e.assert_model(bot, bob_texts)

        status = await e2e.invoke(w.user_id, "markov-privacy status")
        assert "your choice: **opted out**" in status.content
        assert "Stored: 0 of your messages" in status.content


async def test_forget_removes_exactly_one_members_contribution(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    bob_texts = ["the cat sat on the mat", "the dog sat on the log", "a cat is a cat"]
    alice_texts = ["the cat sat on the log too", "the dog and the cat", "zebras only alice says"]
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id, bob)
        msgs = []
        for a, b in zip(alice_texts, bob_texts, strict=True):  # interleaved, shared words
            msgs += await e2e.say(w.channel_id, w.user_id, a)
            msgs += await e2e.say(w.channel_id, bob, b)
        await e2e.wait_learned(bot, msgs)
        await e2e.assert_model(bot, alice_texts + bob_texts)
        # Sent right before the forget, still queued: it must be forgotten too, not learned
        # after the forget.
        await e2e.say(w.channel_id, w.user_id, "queued words from alice")

        rec = await e2e.forget_me(w.user_id)
        assert rec.ephemeral
        assert rec.content == "Forgot 4 of your messages from this server's model."
        await e2e.flush(bot)
        await e2e.assert_model(bot, bob_texts)
        ns = await e2e.ns(bot)
        assert await bot.store.autocomplete(ns, "zebra") == []
        stats = await bot.store.stats(ns)
        assert (stats.messages, stats.authors) == (3, 1)

        # Forgetting is not opting out: alice's next message is learned again.
        again = await e2e.say(w.channel_id, w.user_id, "alice is back")
        await e2e.wait_learned(bot, again)
        await e2e.assert_model(bot, [*bob_texts, "alice is back"])


async def test_edits_and_deletes_of_cached_messages(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        keep = await e2e.say(w.channel_id, w.user_id, "the quick brown fox")
        [edited] = await e2e.say(w.channel_id, w.user_id, "the slow dog jumps")
        [deleted] = await e2e.say(w.channel_id, w.user_id, "the lazy cat sleeps")
        [bobs] = await e2e.say(w.channel_id, bob, "bob is not learned")
        await e2e.wait_learned(bot, [*keep, edited, deleted])
        assert cached(bot, edited["id"])

        await fake.edit_message(edited["id"], "the slow cat")
        await fake.delete_message(deleted["id"])
        await e2e.wait_forgotten(bot, [deleted])

        async def edit_applied() -> bool:
            await e2e.flush(bot)
            words = await bot.store.autocomplete(await e2e.ns(bot), "", 100)
            return "dog" not in words and "cat" in words and "lazy" not in words

        await eventually(edit_applied, what="the edit to replace the old text")
        await e2e.assert_model(bot, ["the quick brown fox", "the slow cat"])

        # An edit to a message that was never learned (no consent) learns nothing.
        await fake.edit_message(bobs["id"], "bob edited this")
        await fake.delete_message(keep[0]["id"])
        await e2e.wait_forgotten(bot, keep)
        await e2e.flush(bot)
        await e2e.assert_model(bot, ["the slow cat"])


async def test_edits_and_deletes_of_uncached_messages_after_a_restart(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        msgs = await e2e.say(
            w.channel_id, w.user_id, "one two three", "four five six", "seven eight nine"
        )
        await e2e.wait_learned(bot, msgs)
    async with e2e.start() as bot:
        assert not any(cached(bot, i) for i in ids_of(msgs))
        await e2e.assert_model(bot, ["one two three", "four five six", "seven eight nine"])
        await fake.edit_message(msgs[0]["id"], "one two ten")
        await fake.delete_message(msgs[1]["id"])
        await e2e.wait_forgotten(bot, msgs[1:2])

        async def edited() -> bool:
            await e2e.flush(bot)
            return bool(await bot.store.autocomplete(await e2e.ns(bot), "ten"))

        await eventually(edited, what="the uncached edit to be learned")
        await e2e.assert_model(bot, ["one two ten", "seven eight nine"])


async def test_bulk_delete_removes_exactly_those_messages(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    texts = ["red green blue", "green blue red", "blue red green", "cyan magenta"]
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        msgs = await e2e.say(w.channel_id, w.user_id, *texts)
        await e2e.wait_learned(bot, msgs)
        never_learned = fake.seed_history(w.channel_id, [(w.user_id, "old unlearned")])
        await fake.bulk_delete(w.channel_id, ids_of([msgs[0], msgs[2], *never_learned]))
        await e2e.wait_forgotten(bot, [msgs[0], msgs[2]])
        await e2e.assert_model(bot, [texts[1], texts[3]])


async def test_channel_delete_forgets_that_channel_and_its_settings(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    second = fake.add_text_channel(w.guild_id, "second")
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        await e2e.enable_learning(w.user_id, channel=second["id"])
        keep = await e2e.say(w.channel_id, w.user_id, "general words stay", "more general")
        gone = await e2e.say(second["id"], w.user_id, "second words go", "general words go")
        await e2e.wait_learned(bot, keep + gone)

        await fake.delete_channel(second["id"])
        await e2e.wait_forgotten(bot, gone)
        await e2e.assert_model(bot, ["general words stay", "more general"])

        async def only_general_listened() -> bool:
            config = await bot.servers.guilds.config(w.guild_id)
            return config.listened == frozenset({w.channel_id})

        await eventually(only_general_listened, what="the deleted channel to leave the settings")


async def test_thread_delete_forgets_its_messages(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        keep = await e2e.say(w.channel_id, w.user_id, "in the channel")
        gone = await e2e.say(w.thread_id, w.user_id, "in the thread")
        await e2e.wait_learned(bot, keep + gone)
        await fake.delete_channel(w.thread_id)
        await e2e.wait_forgotten(bot, gone, timeout=1.0)


async def test_restart_keeps_the_model(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    texts = ["the owl hoots at night", "the owl sleeps by day", "night falls on the barn"]
    options = {"start": "the owl", "temp": 0.7, "seed": 1234}
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        await e2e.wait_learned(bot, await e2e.say(w.channel_id, w.user_id, *texts))
        before = await e2e.snapshot(bot)
        first = (await e2e.invoke(w.user_id, "markov", options)).embeds[0]
    async with e2e.start() as bot:
        assert (await e2e.snapshot(bot)).same_model(before)
        again = (await e2e.invoke(w.user_id, "markov", options)).embeds[0]
        assert again["description"] == first["description"]
        assert again["description"].startswith("the owl")
        assert again["footer"] == first["footer"]
        # Settings survive too: alice is still opted in and #general still listened.
        more = await e2e.say(w.channel_id, w.user_id, "the owl is back")
        await e2e.wait_learned(bot, more)


async def test_messages_posted_while_offline_are_caught_up(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        online = await e2e.say(w.channel_id, w.user_id, "learned while online")
        await e2e.wait_learned(bot, online)
    # The bot is offline: these reach no gateway session, only the channel's history.
    offline = await e2e.say(w.channel_id, w.user_id, "posted while offline", "and another")
    async with e2e.start() as bot:
        await e2e.wait_learned(bot, offline, flush=False)
        await e2e.assert_model(bot, ["learned while online", "posted while offline", "and another"])


async def test_stopping_during_catch_up_is_clean(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        await e2e.wait_learned(bot, await e2e.say(w.channel_id, w.user_id, "seen online"))
    fake.rate_limit_next("GET", rf"/channels/{w.channel_id}/messages", retry_after=0.3)
    async with (
        open_servers(e2e.settings) as servers,
        running_bot(fake, MarkovBot(e2e.settings, servers)) as bot,
    ):
        # Stop while the catch-up's history request waits out its rate limit.
        await fake.wait_for(
            lambda: any(
                r.rate_limited
                for r in fake.requests_matching("GET", rf"/channels/{w.channel_id}/messages")
            ),
            what="the catch-up's history request",
        )
        await bot.close()
        await on_ready_finished()
