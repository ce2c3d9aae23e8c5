"""Generated text made inert: links shown whole, as Discord renders them, never unfurled."""

from __future__ import annotations

import pytest

from cogs.common import inert


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("[click me](https://example.com/x)", "click me (<https://example.com/x>)"),
        # Discord's embed-suppressed form of a masked link.
        ("[click me](<https://example.com/x>)", "click me (<https://example.com/x>)"),
        (
            "see [Foo](https://en.wikipedia.org/wiki/Foo_(bar)) now",
            "see Foo (<https://en.wikipedia.org/wiki/Foo_(bar)>) now",
        ),
        (
            "[a](https://example.com/1) and [b](https://example.com/2)",
            "a (<https://example.com/1>) and b (<https://example.com/2>)",
        ),
        # A label that is itself a URL can't pose as the real destination, nor unfurl.
        (
            "[https://good.example](https://evil.example/x)",
            "<https://good.example> (<https://evil.example/x>)",
        ),
    ],
)
def test_masked_links_show_their_url_whole_after_the_label(text: str, shown: str) -> None:
    assert inert(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("read https://example.com/a?b=1 now", "read <https://example.com/a?b=1> now"),
        (
            "https://en.wikipedia.org/wiki/Foo_(bar)",
            "<https://en.wikipedia.org/wiki/Foo_(bar)>",
        ),
        # The sentence's own parenthesis stays outside the link.
        ("(see https://example.com/x)", "(see <https://example.com/x>)"),
        # Already suppressed: not wrapped twice.
        ("quiet <https://example.com/q>", "quiet <https://example.com/q>"),
    ],
)
def test_bare_urls_are_wrapped_once_so_they_do_not_unfurl(text: str, shown: str) -> None:
    assert inert(text) == shown


def test_invite_links_are_broken_and_still_wrapped() -> None:
    assert inert("[join](https://discord.gg/abc)") == "join (<https://discord.gg/\u200babc>)"


def test_text_without_links_is_unchanged() -> None:
    assert inert("just (some) [words] here") == "just (some) [words] here"
