"""Two servers in one database never see each other's words, whatever happens in between.

A hypothesis state machine drives learning, forgetting, purging and every read the bot
offers (autocomplete, stats, explanation, generation, per-member selections) in two
namespaces whose vocabularies are disjoint, and checks each read for the other's words.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.core.generate import Options, explain_context, generate
from bot.core.model import EmptyModel
from bot.core.present import explanation_json, generation_json
from bot.store import Incoming, Namespace, Store

SERVERS = ("guild:1", "guild:2")
# Each server speaks its own words (plus the shared word "the", which both may use).
WORDS = {
    "guild:1": ["apple", "amber", "anchor", "Alps", "arrow"],
    "guild:2": ["bison", "Berlin", "bramble", "bolt", "bay"],
}
message = st.lists(st.integers(0, 4), min_size=1, max_size=8)


class TwoServers(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.TemporaryDirectory()
        self.store: Store = self.run(Store.open(Path(self.dir.name) / "iso.db"))
        self.ns: dict[str, Namespace] = {}
        self.ids: dict[str, list[int]] = {s: [] for s in SERVERS}
        self.next_id = 1

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.dir.cleanup()

    @initialize()
    def namespaces(self) -> None:
        for s in SERVERS:
            self.ns[s] = self.run(self.store.namespace(s, 2))

    @rule(
        server=st.sampled_from(SERVERS),
        words=st.lists(message, min_size=1, max_size=5),
        author=st.integers(1, 3),
    )
    def learn(self, server: str, words: list[list[int]], author: int) -> None:
        batch = []
        for w in words:
            tokens = ["the", *(WORDS[server][i] for i in w)]
            batch.append(Incoming(self.next_id, tokens, author=author, channel=author % 2))
            self.ids[server].append(self.next_id)
            self.next_id += 1
        self.run(self.store.learn(self.ns[server], batch))

    @rule(server=st.sampled_from(SERVERS), data=st.data())
    def forget(self, server: str, data: st.DataObject) -> None:
        if self.ids[server]:
            victim = data.draw(st.sampled_from(self.ids[server]))
            self.run(self.store.forget(self.ns[server], [victim]))
            self.ids[server].remove(victim)

    @rule(server=st.sampled_from(SERVERS), author=st.integers(1, 3))
    def forget_author(self, server: str, author: int) -> None:
        self.run(self.store.forget_author(self.ns[server], author))

    @rule(server=st.sampled_from(SERVERS))
    def purge(self, server: str) -> None:
        self.run(self.store.purge(self.ns[server]))

    def reads(self, server: str) -> str:
        ns = self.ns[server]
        reader = self.store.reader(ns)
        seen: list[str] = []
        for prefix in ("", "a", "b", "B", "t"):
            seen += self.run(self.store.autocomplete(ns, prefix))
        stats = self.run(self.store.stats(ns))
        seen += [w for w, _ in stats.top_words]
        for words in (None, "the", "apple", "bison"):
            try:
                seen.append(
                    str(explanation_json(self.run(explain_context(reader, words, 1.0, rows=None))))
                )
                seen.append(
                    str(
                        generation_json(
                            self.run(generate(reader, words, Options(seed=1, length=10)))
                        )
                    )
                )
            except (EmptyModel, LookupError):
                pass
        for author in (1, 2, 3):
            selection = self.run(self.store.selection(ns, author=author))
            if selection.messages:
                seen.append(
                    str(generation_json(self.run(generate(selection, None, Options(seed=2)))))
                )
        return " ".join(seen)

    @invariant()
    def nothing_leaks(self) -> None:
        if not self.ns:
            return
        for server, other in (SERVERS, SERVERS[::-1]):
            text = self.reads(server)
            leaked = [w for w in WORDS[other] if w in text]
            assert not leaked, f"{server} shows {leaked} learned only in {other}"

    @invariant()
    def counts_match_the_stored_messages(self) -> None:
        for ns in self.ns.values():
            stored, expected = self.run(self.store.recount(ns))
            assert stored == expected


TwoServers.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)
test_two_servers_never_see_each_other = TwoServers.TestCase
