"""The generation loop: back-off, temperature, seeded draws and the originality check.

This is the only place that walks a chain. It reads through :class:`bot.core.model.ModelReader`
and does the arithmetic with :mod:`bot.core.sampling`, so the CLI, the slash commands and the
tests all generate the same text for the same model, options and seed.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.core.explain import Explanation, Generation, Step, explain
from bot.core.memo import Remembering
from bot.core.model import (
    BOS,
    COPY_RUN,
    EOS,
    NO_COPY,
    Copy,
    EmptyModel,
    Found,
    ModelReader,
    UnknownStart,
    copy_threshold,
)
from bot.core.sampling import (
    MAX_LENGTH,
    CountClass,
    InvalidOption,
    draw,
    greedy,
    scale,
    validate_length,
    validate_min_words,
    validate_temperature,
    validate_top_k,
    validate_top_p,
    without,
)
from bot.core.tokenize import join_words, tokenize

__all__ = [
    "COMPARE_LENGTH",
    "COPY_RUN",
    "DEFAULT_TEMPERATURES",
    "MAX_ATTEMPTS",
    "Known",
    "Options",
    "Pick",
    "choose_next",
    "compare",
    "explain_context",
    "explain_tokens",
    "generate",
    "parse_temperatures",
    "resolve_known",
]

#: Tries before the least-copied attempt is returned anyway.
MAX_ATTEMPTS = 10
DEFAULT_TEMPERATURES = (0.1, 0.5, 1.0)
#: /markov-compare and ``markov-bot compare`` show this many words at every temperature
#: (<end> masked until then), so T alone differs between the lines: the demonstration.
COMPARE_LENGTH = 20
MAX_SEED = 2**63 - 1
MAX_COMPARE = 6


@dataclass(frozen=True, slots=True)
class Options:
    temperature: float = 1.0
    length: int = 30
    seed: int | None = None  # None: a fresh seed, reported back so the output can be repeated
    top_k: int | None = None
    top_p: float | None = None
    originality: bool = True
    min_words: int = 0  # <end> is masked until this many words were generated (0..length)

    def validated(self) -> Options:
        """A copy with every option checked; raises :class:`InvalidOption` for the user."""
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= MAX_SEED
        ):
            raise InvalidOption(f"Seed must be a whole number from 0 to {MAX_SEED}.")
        return replace(
            self,
            temperature=validate_temperature(self.temperature),
            length=validate_length(self.length),
            top_k=validate_top_k(self.top_k),
            top_p=validate_top_p(self.top_p),
            min_words=validate_min_words(self.min_words, validate_length(self.length)),
        )


def start_words(start: str | Sequence[str] | None) -> list[str]:
    """The tokens of a typed start, tokenized like learned text so they can match."""
    if start is None:
        return []
    text = start if isinstance(start, str) else " ".join(start)
    words = tokenize(text)
    if text.strip() and not words:
        raise InvalidOption("The start text has no words I could use (only code or symbols).")
    return words


@dataclass(frozen=True, slots=True)
class Known:
    """The longest known suffix of the words a user typed, and the words it had to drop."""

    ids: list[int]
    words: tuple[str, ...]  # the typed words kept (the suffix), as typed
    unknown: tuple[str, ...]  # typed words never learned, in order (empty: all known)


async def resolve_known(model: ModelReader, words: Sequence[str]) -> Known:
    """Back off over unknown words: the longest suffix of ``words`` made of learned words,
    as a model backs off to the longest context it has seen. The word before the choice
    must be known (nothing can follow an unseen word), else :class:`UnknownStart` with
    close spellings, naming that word, or every word when none is known."""
    ids: list[int] = []
    for i in range(len(words) - 1, -1, -1):
        try:
            ids[:0] = await model.resolve([words[i]])
        except UnknownStart as error:
            unknown = [w for w in words[:i] if not await _known(model, w)] + [words[i]]
            if not ids:
                everything = len(unknown) == len(words)
                raise UnknownStart(words if everything else [words[i]], error.suggestions) from None
            return Known(ids, tuple(words[i + 1 :]), tuple(unknown))
    return Known(ids, tuple(words), ())


async def _known(model: ModelReader, word: str) -> bool:
    try:
        await model.resolve([word])
    except UnknownStart:
        return False
    return True


async def generate(
    model: ModelReader, start: str | Sequence[str] | None, options: Options
) -> Generation:
    opts = options.validated()
    seed = opts.seed if opts.seed is not None else secrets.randbelow(2**31)
    known = await resolve_known(model, start_words(start))
    prefix = known.ids
    rng = random.Random(seed)
    model = Remembering(model)  # redraws walk the same first contexts again

    best: tuple[tuple[float, ...], list[int], list[Pick], bool, Copy] | None = None
    attempts = 0
    while attempts < MAX_ATTEMPTS:
        attempts += 1
        tokens, picks, ended = await _walk(model, prefix, opts, rng)
        copy = NO_COPY
        if opts.originality and tokens:
            copy = await _copy_of(model, tokens)
        score = _copiedness(copy, len(tokens))
        if best is None or score < best[0]:
            best = (score, tokens, picks, ended, copy)
        if not score or opts.temperature == 0.0:
            break  # original, or greedy decoding, which would produce the same copy again
    assert best is not None
    _, tokens, picks, ended, copy = best
    g = await _spell_generation(model, tokens, picks, ended, copy, attempts, seed, opts)
    return replace(g, unknown=known.unknown, start=g.tokens[: len(prefix)])


async def _copy_of(model: ModelReader, tokens: list[int]) -> Copy:
    """The reader's indexed check, made exact for runs of up to ``order + 1`` words: such
    a run was seen inside one message exactly when it is a learned transition (its first
    words as the context, its last as the next word), which the index of message starts
    and ends can miss when the run sits in the middle of a longer message."""
    need = copy_threshold(len(tokens))
    copy = await model.copy_of(tokens, need)
    if copy.is_copy(len(tokens)) or need > model.order + 1:
        return copy
    for i in range(len(tokens) - need + 1):
        context, last = tokens[i : i + need - 1], tokens[i + need - 1]
        found = await model.lookup(context) if context else None
        if not context or (
            found is not None
            and found.order == len(context)
            and await model.count_of(found, last) > 0
        ):
            return Copy(need, False)
    return copy


def _copiedness(copy: Copy, words: int) -> tuple[float, ...]:
    """Empty for an original output; else how badly it copies, so that the least-copied
    attempt can be returned when all are copies: a whole message is worst, then the share
    of the output that one message supplies."""
    if not copy.is_copy(words):
        return ()
    return (1.0 if copy.whole else 0.0, copy.run / words)


#: Reads of one step when the model keeps changing under it (see :func:`choose_next`).
VANISHED_RETRIES = 5


@dataclass(frozen=True, slots=True)
class Pick:
    """One chosen next token, with the distribution it came from."""

    found: Found
    token: int
    prob: float  # under the distribution it was drawn from (T, cut-offs)
    rank: int
    backed_off: bool
    end_masked: bool = False  # <end> was a candidate, masked by min_words
    learned_prob: float = 1.0  # under the learned model: T = 1, no cut-offs (<end> as masked)


@dataclass(frozen=True, slots=True)
class Distribution:
    """A context's candidates as sampled: after back-off and, if asked, with <end> masked."""

    found: Found
    classes: tuple[CountClass, ...]  # found.classes without <end> when it is masked
    end_count: int  # how often <end> followed the context (0: not a candidate)
    masked: bool  # <end> is removed from ``classes``
    backed_off: bool  # a shorter context than the one asked was used


async def distribution(
    model: ModelReader, context: Sequence[int], mask_end: bool = False
) -> Distribution | None:
    """The longest known suffix of ``context`` and its count classes. With ``mask_end``,
    <end> is removed (its logit set to −∞), and a context left with no candidate backs off
    to shorter ones, down to the learned word frequencies (order 0). None when nothing
    was learned."""
    asked = min(model.order, len(context))
    found = await model.lookup(context[-model.order :])
    while found is not None:
        end = await model.count_of(found, EOS) if mask_end else 0
        classes = without(found.classes, end) if end else found.classes
        if classes:
            return Distribution(found, classes, end, bool(end), found.order < asked)
        shorter = found.context[1:]
        found = await model.lookup(shorter) if shorter else await model.unigram()
    return None


async def choose_next(
    model: ModelReader,
    context: Sequence[int],
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    rng: random.Random | None,
    mask_end: bool = False,
) -> Pick | None:
    """One step of a chain: back off, scale, draw (or take the top when ``rng`` is None
    or T = 0). None when no suffix of ``context`` was ever seen.

    The count classes and the chosen candidate are two reads; a batch learned or forgotten
    between them can move the candidate to another class (``candidate_at`` then raises
    ``LookupError``). The step is then read and drawn again, a few times at most."""
    for attempt in range(VANISHED_RETRIES):
        d = await distribution(model, context, mask_end)
        if d is None:
            return None
        scaled = scale(d.classes, temperature, top_k, top_p)
        if rng is None or temperature == 0.0:
            choice = greedy(scaled)
        else:
            choice = draw(scaled, d.classes, rng)
        count = scaled[choice.class_index].count
        # <end> (token 2) is the first learned of its class, so a masked class's members
        # are the real class's members after it.
        offset = choice.offset + (1 if d.masked and count == d.end_count else 0)
        try:
            token = await model.candidate_at(d.found, count, offset)
        except LookupError:
            if attempt == VANISHED_RETRIES - 1:
                raise
            continue
        learned = count / math.fsum(c.count * c.size for c in d.classes)
        return Pick(d.found, token, choice.prob, choice.rank, d.backed_off, d.masked, learned)
    raise AssertionError("unreachable")


async def _walk(
    model: ModelReader, prefix: list[int], opts: Options, rng: random.Random
) -> tuple[list[int], list[Pick], bool]:
    """One chain: the tokens (start words included) and, per step, what was chosen."""
    context = list(prefix) if prefix else [BOS]
    tokens = list(prefix)
    picks: list[Pick] = []
    for _ in range(opts.length):
        mask_end = len(picks) < opts.min_words  # words generated, as ``length`` counts
        pick = await choose_next(
            model, context, opts.temperature, opts.top_k, opts.top_p, rng, mask_end
        )
        if pick is None:
            if context == [BOS]:
                raise EmptyModel()
            break
        picks.append(pick)
        if pick.token == EOS:
            return tokens, picks, True
        tokens.append(pick.token)
        context.append(pick.token)
    return tokens, picks, False


async def _spell_generation(
    model: ModelReader,
    tokens: list[int],
    picks: list[Pick],
    ended: bool,
    copy: Copy,
    attempts: int,
    seed: int,
    opts: Options,
) -> Generation:
    needed = sorted({*tokens, *(t for p in picks for t in (*p.found.context, p.token))})
    spelled = dict(zip(needed, await model.spell(needed), strict=True))
    words = tuple(spelled[t] for t in tokens)
    steps = [
        Step(
            context=tuple(spelled[t] for t in p.found.context),
            backed_off=p.backed_off,
            token=spelled[p.token],
            prob=p.prob,
            learned_prob=p.learned_prob,
            rank=p.rank,
            candidates=p.found.candidates - p.end_masked,
            end_masked=p.end_masked,
        )
        for p in picks
    ]
    return Generation(
        text=join_words(words),
        tokens=words,
        steps=tuple(steps),
        seed=seed,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        min_words=opts.min_words,
        order=model.order,
        attempts=attempts,
        copied_run=copy.run if copy.is_copy(len(tokens)) else 0,
        copied_whole=copy.whole,
        ended=ended,
    )


async def explain_context(
    model: ModelReader,
    words: str | Sequence[str] | None,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    rows: int | None = 10,
    min_words: int = 0,
) -> Explanation:
    """What could follow ``words`` (or start a message, when empty) at ``temperature``;
    <end> masked while ``words`` are fewer than ``min_words``.

    ``rows=None`` lists every candidate; otherwise the rest are summarised.
    """
    asked = start_words(words)
    min_words = validate_min_words(min_words, MAX_LENGTH)
    known = await resolve_known(model, asked)
    e = await explain_tokens(
        model,
        known.ids or [BOS],
        temperature,
        top_k,
        top_p,
        rows,
        asked=known.words,
        mask_end=len(known.words) < min_words,
    )
    return replace(e, unknown=known.unknown) if known.unknown else e


async def explain_tokens(
    model: ModelReader,
    ids: Sequence[int],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    rows: int | None = 10,
    asked: Sequence[str] = (),
    mask_end: bool = False,
) -> Explanation:
    """:func:`explain_context` for a context already in token ids (a chain in progress)."""
    temperature = validate_temperature(temperature)
    top_k, top_p = validate_top_k(top_k), validate_top_p(top_p)
    d = await distribution(model, ids, mask_end)
    if d is None:
        raise EmptyModel()
    top = await model.top_candidates(d.found, rows)
    spelled = await model.spell([t for t, _ in top])
    context = await model.spell(list(d.found.context))
    return explain(
        asked,
        context,
        d.found.classes,
        [(w, c) for w, (_, c) in zip(spelled, top, strict=True)],
        temperature,
        top_k,
        top_p,
        backed_off=d.backed_off,
        end_masked=d.end_count if d.masked else 0,
    )


def parse_temperatures(text: str) -> tuple[float, ...]:
    """ "0.1, 0.5,1" → (0.1, 0.5, 1.0), each validated; at most :data:`MAX_COMPARE`."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise InvalidOption("Give temperatures separated by commas, for example 0.1,0.5,1.")
    if len(parts) > MAX_COMPARE:
        raise InvalidOption(f"Compare at most {MAX_COMPARE} temperatures at once.")
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise InvalidOption(f"“{part[:20]}” is not a number.") from None
    return tuple(validate_temperature(v) for v in values)


async def compare(
    model: ModelReader,
    start: str | Sequence[str] | None,
    temperatures: Sequence[float],
    options: Options,
) -> list[Generation]:
    """The same start and seed at several temperatures, so only T differs."""
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    return [
        await generate(model, start, replace(options, temperature=t, seed=seed))
        for t in temperatures
    ]
