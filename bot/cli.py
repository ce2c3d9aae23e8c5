"""``markov-bot``: every slash command's core, in a terminal, plus ``run`` and ``sync``.

The CLI reads and writes the same SQLite file as the bot; its own model lives in the
namespace ``cli`` unless ``--namespace`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import as_file
from pathlib import Path
from typing import Any

from bot.core.explain import Explanation
from bot.core.generate import (
    COMPARE_LENGTH,
    DEFAULT_TEMPERATURES,
    VARIABLES,
    Options,
    compare,
    explain_context,
    generate,
    parse_values,
)
from bot.core.model import MAX_ORDER, TEACHING_ORDER, EmptyModel, ModelReader, UnknownStart
from bot.core.present import (
    candidate_lines,
    compare_label,
    explanation_json,
    explanation_summary,
    explanation_table,
    generation_json,
    knobs_json,
    temperature_label,
    trace_lines,
)
from bot.core.sampling import InvalidOption, Knobs, parse_bias, parse_words
from bot.core.stepper import Stepper
from bot.core.wording import context_size, plural, seed_phrase, unknown_note
from bot.corpora import CORPORA, DEFAULT_CORPUS, read_lines
from bot.services.importing import ImportTotals, corpus_namespace, import_lines
from bot.services.servers import DAY, Servers
from bot.services.settings import Settings, SettingsError, load_settings
from bot.store import Namespace, Store, StoreError

__all__ = ["main"]

log = logging.getLogger("bot.cli")


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def _temperature(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="markov-bot",
        description="A Markov-chain bot that teaches sampling temperature.",
    )
    p.add_argument(
        "--db",
        help="SQLite file or postgresql://user[:password]@host[:port]/dbname "
        "(default: MARKOV_DB or markov.db)",
    )
    p.add_argument("--namespace", default="cli", help="which model in the file (default: cli)")
    p.add_argument(
        "--order",
        type=int,
        choices=range(1, MAX_ORDER + 1),
        default=TEACHING_ORDER,
        help="context length when the namespace is created (default 1, the word-to-word "
        "table of the classic demonstration; Discord servers use MARKOV_ORDER)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--json", action="store_true", help="machine-readable output")
        return c

    def sampling(c: argparse.ArgumentParser, temp: bool = True) -> None:
        if temp:
            c.add_argument("--temp", type=_temperature, default=1.0, help="temperature (0–5)")
        c.add_argument("--top-k", type=int, default=None, help="keep the K most likely words")
        c.add_argument("--top-p", type=float, default=None, help="keep the top words up to mass P")
        knobs(c)

    def knobs(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--min-p", type=float, default=None, help="keep words with P ≥ this × the top one's"
        )
        c.add_argument(
            "--repetition-penalty",
            type=float,
            default=1.0,
            help="multiply an already used word's logit by R ≥ 1",
        )
        c.add_argument(
            "--presence-penalty", type=float, default=0.0, help="lower a used word's logit by A"
        )
        c.add_argument(
            "--frequency-penalty",
            type=float,
            default=0.0,
            help="lower the logit of a word used n times by n × B",
        )
        c.add_argument(
            "--ban", action="append", default=[], metavar="WORD", help="never choose WORD"
        )
        c.add_argument(
            "--bias",
            action="append",
            default=[],
            metavar="WORD=X",
            help="add X to WORD's logit, e.g. cat=+2",
        )

    c = command("learn", "learn text files, one message per non-empty line")
    c.add_argument("files", nargs="+", type=Path)
    c.add_argument("--no-progress", action="store_true")

    def corpus(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--corpus",
            choices=sorted(CORPORA),
            help="read a bundled corpus instead of --namespace (as the corpus: option does)",
        )

    c = command("markov", "generate text")
    c.add_argument("start", nargs="*", help="words to start from")
    corpus(c)
    sampling(c)
    c.add_argument("--length", type=int, default=30, help="maximum words (1–100)")
    c.add_argument("--seed", type=int, default=None, help="repeat an earlier output exactly")
    c.add_argument("--trace", action="store_true", help="show each word's probability and rank")
    c.add_argument("--wide", action="store_true", help="a wide trace (context spelled out)")
    c.add_argument("--no-originality", action="store_true", help="allow verbatim copies")
    c.add_argument("--min-words", type=int, default=0, help="mask <end> until this many words")

    c = command("explain", "show how the next word is chosen after WORDS")
    c.add_argument("words", nargs="*", help="the context (empty: how messages start)")
    corpus(c)
    sampling(c)
    c.add_argument("--rows", type=int, default=10, help="candidates to list (default 10)")
    c.add_argument("--all", action="store_true", help="list every candidate")
    c.add_argument("--chart", type=Path, help="also write a PNG chart to this file")
    c.add_argument("--wide", action="store_true", help="one wide line per candidate")
    c.add_argument(
        "--min-words", type=int, default=0, help="mask <end> while WORDS are fewer than this"
    )

    c = command("compare", "the same start and seed at several temperatures")
    c.add_argument("start", nargs="*")
    corpus(c)
    c.add_argument("--temps", default=",".join(f"{t:g}" for t in DEFAULT_TEMPERATURES))
    c.add_argument(
        "--vary",
        choices=VARIABLES,
        default="temperature",
        help="the knob to vary (default temperature); its values are --values",
    )
    c.add_argument("--values", default=None, help="values of --vary, e.g. 1,1.3,2")
    c.add_argument("--temp", type=_temperature, default=1.0, help="T when another knob varies")
    c.add_argument("--top-k", type=int, default=None, help="keep the K most likely words")
    c.add_argument("--top-p", type=float, default=None, help="keep the top words up to mass P")
    knobs(c)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--length", type=int, default=COMPARE_LENGTH)
    c.add_argument(
        "--min-words",
        type=int,
        default=None,
        help=f"mask <end> until this many words (default: the length, {COMPARE_LENGTH})",
    )

    c = command("step", "build a sentence one word at a time, as /markov-step does")
    c.add_argument("start", nargs="*", help="words to start from")
    corpus(c)
    c.add_argument("--temp", type=_temperature, default=1.0, help="temperature for Sample")
    c.add_argument("--seed", type=int, default=None, help="seed of the draws")
    c.add_argument(
        "--min-words", type=int, default=0, help="mask <end> until the sentence has N words"
    )
    knobs(c)
    c.add_argument(
        "--keys",
        default=None,
        help="press these keys and stop instead of asking (for scripts): "
        + ", ".join(f"{k} {what}" for k, (what, _) in STEP_KEYS.items()),
    )

    command("stats", "what the model has learned")

    def server(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--guild",
            type=int,
            help="act on this Discord server's model (as the bot does) instead of --namespace",
        )

    c = command("forget", "forget the lines of files learned earlier, a member, or everything")
    c.add_argument("files", nargs="*", type=Path)
    c.add_argument("--all", action="store_true", help="forget everything in the model")
    c.add_argument("--author", type=int, help="forget every message of this member (user id)")
    server(c)

    c = command("retention", "forget messages older than DAYS now (as the hourly run does)")
    c.add_argument("days", type=int)
    server(c)

    c = sub.add_parser(
        "migrate",
        help="copy every namespace and the server settings from one store to another",
        description="Copy every namespace (models, provenance), the server settings, consent "
        "and backfill positions from SOURCE to DEST (a SQLite file or a postgresql:// URL, "
        "either way round), then check every copied namespace. DEST must hold none of "
        "SOURCE's namespaces yet.",
    )
    c.add_argument("source")
    c.add_argument("dest")
    sub.add_parser("run", help="run the Discord bot (needs DISCORD_TOKEN)")
    sub.add_parser("sync", help="register the slash commands with Discord now")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bot = args.command in ("run", "sync")
    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"markov-bot: {e}", file=sys.stderr)
        return 1 if bot else 2  # the bot's start-up failures exit 1, as run_bot's do
    if bot:
        from bot.app import run_bot

        return run_bot(settings, sync_only=args.command == "sync")  # it sets up logging
    logging.basicConfig(
        level=settings.log_level_number, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(_offline(args, settings))
    except (CliError, StoreError, InvalidOption, UnknownStart, EmptyModel, UnicodeDecodeError) as e:
        print(f"markov-bot: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("markov-bot: interrupted; every finished batch is saved.", file=sys.stderr)
        return 130


async def _offline(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        return await _migrate(args.source, args.dest)
    store = await Store.open(args.db or settings.db_path)
    try:
        ns = await store.namespace(args.namespace, args.order)
        args.settings = settings
        handler: Callable[[Store, Namespace, argparse.Namespace], Awaitable[Any]] = _COMMANDS[
            args.command
        ]
        result = await handler(store, ns, args)
    finally:
        await store.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


async def _migrate(source_at: str, dest_at: str) -> int:
    from bot.store.migrate import copy_store

    source = await Store.open(source_at)
    try:
        dest = await Store.open(dest_at)
        try:
            copied = await copy_store(source, dest, report=print)
        finally:
            await dest.close()
    finally:
        await source.close()
    total = sum(copied.values())
    print(
        f"Copied {len(copied)} namespaces ({total:,} messages) to {dest.where}: "
        "checked, consistent."
    )
    return 0


def _say(args: argparse.Namespace, text: str) -> None:
    """Human output; with --json, notes go to stderr so stdout stays parseable."""
    print(text, file=sys.stderr if args.json else sys.stdout)


async def _ensure_learned(store: Store, ns: Namespace, args: argparse.Namespace) -> None:
    if await store.is_empty(ns):
        _say(
            args,
            f"Nothing learned yet: learning the bundled corpus {DEFAULT_CORPUS.title!r} first…",
        )
        with as_file(DEFAULT_CORPUS.path) as path:  # a real file even from a zipped install
            totals = await _learn_file(store, ns, path, progress=not args.json)
        _say(args, f"Learned {plural(totals.learned, 'line')} ({plural(totals.tokens, 'word')}).\n")


def _note_unknown(args: argparse.Namespace, unknown: Sequence[str], used: Sequence[str]) -> None:
    """Say which typed words were never learned and what was used instead."""
    if unknown:
        _say(args, unknown_note(unknown, used))


async def _learn_file(store: Store, ns: Namespace, path: Path, progress: bool) -> ImportTotals:
    try:
        size = path.stat().st_size  # noqa: ASYNC240 - one stat in a CLI, nothing else runs
    except OSError as e:
        raise CliError(f"{path}: {e.strerror}") from None
    from tqdm import tqdm

    with tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc=path.name,
        disable=not progress,
        leave=False,
    ) as bar:

        def advance(totals: ImportTotals, size: int) -> None:
            bar.update(size)
            bar.set_postfix(lines=totals.lines, words=totals.tokens)

        return await import_lines(store, ns, read_lines(path), path.name, advance)


async def _learn(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for path in args.files:
        totals = await _learn_file(store, ns, path, progress=not (args.json or args.no_progress))
        out[str(path)] = {
            "lines": totals.lines,
            "learned": totals.learned,
            "already_known": totals.duplicates,
            "empty": totals.empty,
            "tokens": totals.tokens,
        }
        _say(
            args,
            f"{path}: learned {totals.learned:,} of {plural(totals.lines, 'line')} "
            f"({plural(totals.tokens, 'word')}); {totals.duplicates:,} were already known, "
            f"{totals.empty:,} had no words.",
        )
    return out


async def _model(store: Store, ns: Namespace, args: argparse.Namespace) -> ModelReader:
    """The model a generating command reads: a bundled corpus, or the namespace (learning the
    default corpus into it first when it is empty)."""
    if args.corpus:
        return store.reader(await corpus_namespace(store, CORPORA[args.corpus], TEACHING_ORDER))
    await _ensure_learned(store, ns, args)
    return store.reader(ns)


async def _markov(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    options = Options(
        temperature=args.temp,
        length=args.length,
        seed=args.seed,
        top_k=args.top_k,
        top_p=args.top_p,
        originality=not args.no_originality,
        min_words=args.min_words,
        knobs=_knobs(args),
    )
    g = await generate(await _model(store, ns, args), args.start, options)
    _note_unknown(args, g.unknown, g.start)
    if not args.json:
        print(g.text)
        seed = seed_phrase(g.seed, g.temperature)
        print(
            f"  T = {temperature_label(g.temperature)}{f', {seed}' if seed else ''}, "
            f"{context_size(g.order)}"
        )
        if g.knobs.labels():
            print(f"  {', '.join(g.knobs.labels())}")
        if args.trace:
            print("\n".join("  " + line for line in trace_lines(g, wide=args.wide)))
    return generation_json(g)


async def _explain(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    model = await _model(store, ns, args)
    e = await explain_context(
        model,
        args.words,
        args.temp,
        args.top_k,
        args.top_p,
        rows=None if args.all or args.json else max(1, args.rows),
        min_words=args.min_words,
        knobs=_knobs(args),
    )
    if args.chart:
        from bot.core.charts import explanation_chart

        chart_source = e
        if args.all or args.json:
            chart_source = await explain_context(
                model,
                args.words,
                args.temp,
                args.top_k,
                args.top_p,
                rows=12,
                min_words=args.min_words,
                knobs=_knobs(args),
            )
        args.chart.write_bytes(await asyncio.to_thread(explanation_chart, chart_source))
    _note_unknown(args, e.unknown, e.asked)
    if not args.json:
        print(explanation_summary(e))
        print(explanation_table(e, wide=args.wide))
        if args.chart:
            print(f"Chart written to {args.chart}")
    return explanation_json(e)


async def _compare(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    model = await _model(store, ns, args)
    vary = args.vary
    default = args.temps if vary == "temperature" else ""
    values = parse_values(vary, args.values or default)
    min_words = args.length if args.min_words is None else args.min_words
    options = Options(
        temperature=args.temp,
        length=args.length,
        seed=args.seed,
        min_words=min_words,
        top_k=args.top_k,
        top_p=args.top_p,
        knobs=_knobs(args),
    )
    results = await compare(model, args.start, values, options, vary)
    _note_unknown(args, results[0].unknown, results[0].start)
    if not args.json:
        print(f"Seed {results[0].seed}; only {vary} changes.")
        print("Perplexity under the learned model (T = 1): how surprising each text is.")
        for g in results:
            print(f"\n{compare_label(g, vary):<24} (perplexity {g.perplexity_learned:.2f})")
            print(f"  {g.text}")
    return {
        "seed": results[0].seed,
        "vary": vary,
        "results": [generation_json(g) for g in results],
    }


def _knobs(args: argparse.Namespace) -> Knobs:
    """The sampling-lab options of a command, validated later with the others."""
    return Knobs(
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty,
        ban=parse_words(args.ban),
        bias=parse_bias(args.bias),
    )


#: The stepper's keys, named as its Discord buttons are.
STEP_KEYS: dict[str, tuple[str, Callable[[Stepper], Awaitable[object] | None]]] = {
    "s": ("Sample", Stepper.sample),
    "g": ("Greedy", Stepper.greedy),
    "b": ("Back", Stepper.back),
    "c": ("T × 0.5", Stepper.colder),
    "w": ("T × 2", Stepper.warmer),
    "q": ("quit", lambda _: None),
}
STEP_ROWS = 8


def _show_step(stepper: Stepper, e: Explanation | None) -> None:
    sentence = stepper.sentence or "(start of a message)"
    knobs = "".join(f", {label}" for label in stepper.knobs.labels())
    print(
        f"\nT = {temperature_label(stepper.temperature)}{knobs} · {sentence}"
        + (" ⏹" if stepper.ended else "")
    )
    if stepper.notes:
        print(f"  last step: {stepper.notes[-1]}")
    if e is not None:
        print("\n".join("  " + line for line in candidate_lines(e)))


async def _step(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    stepper = await Stepper.begin(
        await _model(store, ns, args),
        " ".join(args.start) or None,
        args.temp,
        seed,
        args.min_words,
        _knobs(args),
    )
    _note_unknown(args, stepper.unknown, stepper.start)
    keys = iter(args.keys.lower()) if args.keys is not None else None
    prompt = "[s]ample [g]reedy [b]ack [c]older [w]armer [q]uit> "
    while True:
        if not args.json:
            _show_step(stepper, await stepper.candidates(STEP_ROWS))
        if keys is None:
            try:  # a thread: the prompt must not block the loop reading the database
                key = (await asyncio.to_thread(input, prompt)).strip().lower()[:1]
            except EOFError:
                break
        else:
            key = next(keys, "q")
        if key == "q":
            break
        if key not in STEP_KEYS:
            _say(args, f"  unknown key {key!r}: one of {', '.join(STEP_KEYS)}")
            continue
        if key in "sg" and not stepper.can_advance:
            _say(args, "  the sentence has ended: [b]ack or [q]uit")
            continue
        result = STEP_KEYS[key][1](stepper)
        if result is not None:
            await result
    return {
        "seed": stepper.seed,
        "temperature": stepper.temperature,
        "text": stepper.sentence,
        "words": stepper.words,
        "ended": stepper.ended,
        "unknown": list(stepper.unknown),
        "knobs": knobs_json(stepper.knobs),
        "steps": stepper.notes,
    }


async def _stats(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    s = await store.stats(ns)
    if not args.json:
        print(f"Model “{ns.name}” (context of up to {plural(s.order, 'word')})")
        print(f"  messages   {s.messages:,}")
        print(f"  words      {s.tokens:,} ({s.vocabulary:,} different)")
        print(f"  contexts   {s.contexts:,}")
        print(f"  top words  {', '.join(w for w, _ in s.top_words)}")
        print(f"  database   {s.database_bytes / 1e6:.1f} MB (whole file)")
    return {
        "namespace": ns.name,
        "messages": s.messages,
        "tokens": s.tokens,
        "vocabulary": s.vocabulary,
        "contexts": s.contexts,
        "order": s.order,
        "top_words": [{"token": w, "count": c} for w, c in s.top_words],
        "database_bytes": s.database_bytes,
    }


def _servers(store: Store, args: argparse.Namespace) -> Servers:
    """The bot's per-server service over the same store (for --guild)."""
    settings: Settings = args.settings
    return Servers(store, order=settings.order, grace_days=settings.removed_guild_grace_days)


async def _forget(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    if sum((args.all, bool(args.files), args.author is not None)) != 1:
        raise CliError("give the files whose lines to forget, --author ID, or --all")
    servers = _servers(store, args) if args.guild is not None else None
    if servers is not None:
        ns = await servers.namespace(args.guild)
    if args.author is not None:
        if servers is not None:
            n = await servers.forget_member(args.guild, args.author)
        else:
            n = await store.forget_author(ns, args.author)
    elif args.all:
        n = await servers.purge(args.guild) if servers is not None else await store.purge(ns)
    else:
        from bot.store import message_key

        n = 0
        for path in args.files:
            if not path.is_file():
                raise CliError(f"{path}: no such file")
            ids = [message_key(path.name, no, text) for no, text in read_lines(path)]
            n += await store.forget(ns, ids)
    _say(args, f"Forgot {plural(n, 'message')} from “{ns.name}”.")
    return {"forgotten": n}


async def _retention(store: Store, ns: Namespace, args: argparse.Namespace) -> dict[str, Any]:
    if args.days < 1:
        raise CliError("DAYS must be at least 1")
    if args.guild is not None:
        servers = _servers(store, args)
        ns = await servers.namespace(args.guild)
        n = await servers.apply_retention(args.guild, args.days)
    else:
        n = await store.forget_older_than(ns, time.time() - args.days * DAY)
    _say(args, f"Forgot {n:,} messages older than {args.days} days from “{ns.name}”.")
    return {"forgotten": n, "days": args.days}


_COMMANDS: dict[str, Callable[[Store, Namespace, argparse.Namespace], Awaitable[Any]]] = {
    "learn": _learn,
    "markov": _markov,
    "explain": _explain,
    "compare": _compare,
    "step": _step,
    "stats": _stats,
    "forget": _forget,
    "retention": _retention,
}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
