"""Buttons outliving Discord's 15-minute interaction token, through the real client.

The fake ages a token on request (``expire_token``) instead of the test sleeping; a call
through an expired token gets Discord's 401 / 50027 there, as it does on Discord.
"""

from __future__ import annotations

from typing import Any

import pytest

from cogs.views import EXPIRED
from fake_discord import BOT_USER_ID, PERM_VIEW_CHANNEL, FakeDiscord, InteractionRecord
from tests.e2e.support import E2E, eventually
from tests.e2e.test_e2e_commands import taught

pytestmark = pytest.mark.both_backends  # the same behaviour on SQLite and PostgreSQL

# (command, options, the extension's module holding its view timeout, that constant, a button)
VIEWS = [
    pytest.param(
        "markov-step", {"start": "the"}, "cogs.stepping", "STEP_TIMEOUT", "step-sample", id="step"
    ),
    pytest.param(
        "markov-explain",
        {"word": "the"},
        "cogs.explanation",
        "VIEW_TIMEOUT",
        "t-half",
        id="explain",
    ),
]


def buttons(fake: FakeDiscord, rec: InteractionRecord) -> list[dict[str, Any]]:
    rows = fake.message(rec.original_message_id).get("components") or []
    return [c for row in rows for c in row.get("components", [])]


def token_refusals(fake: FakeDiscord) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.status == 401]


@pytest.mark.parametrize(("command", "options", "module", "constant", "button"), VIEWS)
async def test_a_view_that_outlives_its_token_is_greyed_out_with_the_bot_token(
    e2e: E2E,
    fake: FakeDiscord,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    options: dict[str, Any],
    module: str,
    constant: str,
    button: str,
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        # load_extension executes its own copy of the module: patch that one. Long enough
        # for the press below to land before it, on a loaded machine too.
        monkeypatch.setattr(bot.extensions[module], constant, 3.0)
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, command, options)
        fake.expire_token(rec)  # the command was run more than 15 minutes ago
        # A press still works: it brings its own fresh token.
        pressed = await e2e.click(rec, button, w.user_id)
        assert pressed.original_message_id == rec.original_message_id

        async def greyed_out() -> bool:
            shown = buttons(fake, rec)
            return bool(shown) and all(b.get("disabled") for b in shown)

        await eventually(greyed_out, timeout=10.0, what=f"the {command} buttons to be greyed out")
        message = fake.message(rec.original_message_id)
        assert message["author"]["id"] == str(BOT_USER_ID)
        edits = fake.requests_matching(
            "PATCH", rf"^/channels/{w.channel_id}/messages/{message['id']}$"
        )
        assert [r.status for r in edits] == [200] and all(r.authorized for r in edits)
        assert token_refusals(fake) == []  # nothing went through the dead token
        assert message["embeds"], "greying out kept the content"


@pytest.mark.parametrize(("command", "options", "module", "constant", "button"), VIEWS)
async def test_a_press_after_the_view_expired_is_answered(
    e2e: E2E,
    fake: FakeDiscord,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    options: dict[str, Any],
    module: str,
    constant: str,
    button: str,
) -> None:
    """The grey-out could not be done (the bot lost access to the channel): a press on the
    still-live-looking button gets a sentence instead of "This interaction failed"."""
    w = e2e.world
    async with e2e.start() as bot:
        monkeypatch.setattr(bot.extensions[module], constant, 1.0)
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, command, options)
        fake.expire_token(rec)
        fake.set_overwrite(w.channel_id, BOT_USER_ID, deny=PERM_VIEW_CHANNEL, member=True)
        edit = rf"^/channels/{w.channel_id}/messages/{rec.original_message_id}$"
        await fake.wait_for_request("PATCH", edit)
        assert [r.status for r in fake.requests_matching("PATCH", edit)] == [403]
        [still] = [b for b in buttons(fake, rec) if b["custom_id"] == button]
        assert not still.get("disabled")  # the grey-out was refused: the button looks alive
        late = await fake.click(rec.original_message_id, button, w.user_id)
        await late.wait_response()
        assert late.ephemeral and late.content == EXPIRED
        assert token_refusals(fake) == []


async def test_a_press_on_buttons_from_before_a_restart_is_answered(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov-step", {"start": "the"})
    async with e2e.start():
        late = await fake.click(rec.original_message_id, "step-sample", w.user_id)
        await late.wait_response()
        assert late.ephemeral and late.content == EXPIRED
