"""``python -m bot``: run the Discord bot (the same as ``markov-bot run``)."""

from bot.cli import main

raise SystemExit(main(["run"]))
