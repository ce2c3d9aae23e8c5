"""The generation loop: back-off, temperature, seeded draws and the originality check.

This is the only place that walks a chain. It reads through :class:`bot.core.model.ModelReader`
and does the arithmetic with :mod:`bot.core.sampling`, so the CLI, the slash commands and the
tests all generate the same text for the same model, options and seed.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bot.core.explain import Explanation, Generation, Step, explain
from bot.core.model import (
    BOS,
    COPY_RUN,
    END_LABEL,
    EOS,
    NO_COPY,
    Ahead,
    Copy,
    EmptyModel,
    Found,
    ModelReader,
    UnknownStart,
    copy_threshold,
)
from bot.core.sampling import (
    MAX_LENGTH,
    NO_KNOBS,
    CountClass,
    Draw,
    InvalidOption,
    Knobs,
    Pipeline,
    Special,
    draw_at,
    greedy,
    pipeline,
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
    "NO_ADJUSTER",
    "VARIABLES",
    "Adjuster",
    "Known",
    "Options",
    "Pick",
    "adjuster",
    "choose_next",
    "compare",
    "explain_context",
    "explain_tokens",
    "generate",
    "parse_temperatures",
    "parse_values",
    "resolve_known",
    "with_value",
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
    knobs: Knobs = NO_KNOBS  # min-p, penalties, bias and ban (bot.core.sampling.Knobs)

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
            knobs=self.knobs.validated(),
        )


@dataclass(frozen=True, slots=True)
class Adjuster:
    """The knobs with their words resolved to this model's token ids."""

    knobs: Knobs
    ban: frozenset[int]
    bias: tuple[tuple[int, float], ...]

    def special(self, token: int, count: int, logit: float, used: int) -> Special | None:
        """The candidate as a special when a knob changes its logit, else None."""
        if token in self.ban:
            return Special(token, count, -math.inf, "ban")
        adjusted = self.knobs.penalised(logit, used) + dict(self.bias).get(token, 0.0)
        return Special(token, count, adjusted) if adjusted != logit else None

    def watched(self, used: Mapping[int, int]) -> list[int]:
        """The tokens whose logit a knob may change at this step."""
        words = set(self.ban) | {t for t, b in self.bias if b}
        if self.knobs.penalises:
            words |= {t for t, n in used.items() if n > 0}
        return sorted(words)


NO_ADJUSTER = Adjuster(NO_KNOBS, frozenset(), ())


async def adjuster(model: ModelReader, knobs: Knobs) -> Adjuster:
    """Resolve the ban and bias words; an unknown one is named in the error."""
    if not knobs.ban and not knobs.bias:
        return Adjuster(knobs, frozenset(), ())
    words = list(dict.fromkeys([*knobs.ban, *(w for w, _ in knobs.bias)]))
    ids: dict[str, int] = {}
    unknown = []
    for word in words:
        if word == END_LABEL:
            ids[word] = EOS
            continue
        try:
            [ids[word]] = await model.resolve([word])
        except (UnknownStart, ValueError):
            unknown.append(word)
    if unknown:
        shown = ", ".join(f"“{w[:20]}”" for w in unknown[:5])
        raise InvalidOption(f"I never learned {shown}, so I cannot ban or bias it.")
    return Adjuster(
        knobs,
        frozenset(ids[w] for w in knobs.ban),
        tuple((ids[w], b) for w, b in knobs.bias),
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
    return await model.run(lambda m: _generate(m, start, opts, seed))


async def _generate(
    model: ModelReader, start: str | Sequence[str] | None, opts: Options, seed: int
) -> Generation:
    known = await resolve_known(model, start_words(start))
    prefix = known.ids
    rng = random.Random(seed)
    adjust = await adjuster(model, opts.knobs)

    best: tuple[tuple[float, ...], list[int], list[Pick], bool, Copy] | None = None
    attempts = 0
    kept: list[Pick] = []
    while attempts < MAX_ATTEMPTS:
        attempts += 1
        tokens, picks, ended = await _walk(model, prefix, opts, rng, adjust, kept)
        copy = NO_COPY
        if opts.originality and tokens:
            copy = await _copy_of(model, tokens)
        score = _copiedness(copy, len(tokens))
        if best is None or score < best[0]:
            best = (score, tokens, picks, ended, copy)
        if not score or opts.temperature == 0.0:
            break  # original, or greedy decoding, which would produce the same copy again
        kept = [] if kept else picks[: _redraw_from(picks, copy, len(prefix))]
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
            return Copy(need, False, i)
    return copy


def _redraw_from(picks: Sequence[Pick], copy: Copy, typed: int) -> int:
    """How many steps of a copying chain the next attempt keeps: those before the last
    real choice at or before the copied run's start. A run often starts after a word
    that left one way to go (a rare name and the phrase it came in), so redrawing only
    from its first word would copy it again. A whole message is drawn again from the
    start, and so is a chain whose redrawn part copied again (``kept`` above): the
    cheap way out first, the sure one next."""
    if copy.whole:
        return 0
    k = max(0, copy.at - typed)
    while k > 0 and picks[k].prob >= 1.0:
        k -= 1
    return k


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
    changed: bool = False  # without the penalties, bias and ban the same draw gives another word


@dataclass(frozen=True, slots=True)
class Distribution:
    """A context's candidates as sampled: after back-off, with the words a knob changed
    (and <end> while masked) held apart from their count classes."""

    found: Found
    classes: tuple[CountClass, ...]  # found.classes without the specials
    specials: tuple[Special, ...]  # masked <end> first, then the adjusted words
    end_count: int  # how often <end> followed the context (0: not a candidate)
    masked: bool  # <end> is masked (its logit −∞)
    backed_off: bool  # a shorter context than the one asked was used

    @property
    def adjusted(self) -> bool:
        return any(s.removed != "masked" for s in self.specials)

    def pipeline(
        self,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        min_p: float | None,
        plain: bool = False,
    ) -> Pipeline:
        """The documented pipeline; ``plain``: as if no penalty, bias or ban were set."""
        if plain:
            end = self.end_count if self.masked else 0
            classes = without(self.found.classes, end) if end else self.found.classes
            return pipeline(classes, temperature, top_k, top_p, min_p)
        return pipeline(self.classes, temperature, top_k, top_p, min_p, self.specials)

    def removed_from(self, count: int, plain: bool = False) -> list[int]:
        """Token ids held apart from the class of ``count``, in learning order."""
        return sorted(
            s.token
            for s in self.specials
            if s.count == count and (not plain or s.removed == "masked")
        )


async def distribution(
    model: ModelReader,
    context: Sequence[int],
    mask_end: bool = False,
    adjust: Adjuster = NO_ADJUSTER,
    used: Mapping[int, int] | None = None,
) -> Distribution | None:
    """The longest known suffix of ``context``, its count classes and the candidates whose
    logit a knob changes. With ``mask_end``, <end> gets logit −∞; a context left with no
    candidate (everything masked or banned) backs off to shorter ones, down to the learned
    word frequencies (order 0). None when nothing was learned."""
    used = used or {}
    asked = min(model.order, len(context))
    found = await model.lookup(context[-model.order :])
    watched = adjust.watched(used)
    while found is not None:
        total = found.total
        specials: list[Special] = []
        end = await model.count_of(found, EOS) if mask_end else 0
        if end:
            specials.append(Special(EOS, end, -math.inf, "masked"))
        counts = await model.counts_of(found, [t for t in watched if not (t == EOS and end)])
        for token, count in sorted(counts.items()):
            special = adjust.special(token, count, math.log(count / total), used.get(token, 0))
            if special is not None:
                specials.append(special)
        classes = without(found.classes, *(s.count for s in specials))
        if classes or any(s.removed is None for s in specials):
            return Distribution(
                found, classes, tuple(specials), end, bool(end), found.order < asked
            )
        shorter = found.context[1:]
        found = await model.lookup(shorter) if shorter else await model.unigram()
    return None


async def _member(
    model: ModelReader, d: Distribution, pipe: Pipeline, choice: Draw, plain: bool = False
) -> int:
    """The token a draw landed on: a special directly, else the ``offset``-th member of
    its class among those not held apart (one read either way)."""
    group = pipe.groups[choice.class_index]
    if group.token is not None:
        return group.token
    removed = d.removed_from(group.count, plain)
    if all(t <= EOS for t in removed):  # only <end>, the first learned of any class
        return await model.candidate_at(d.found, group.count, choice.offset + len(removed))
    return await model.candidate_at(d.found, group.count, choice.offset, removed)


async def choose_next(
    model: ModelReader,
    context: Sequence[int],
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    rng: random.Random | None,
    mask_end: bool = False,
    adjust: Adjuster = NO_ADJUSTER,
    used: Mapping[int, int] | None = None,
) -> Pick | None:
    """One step of a chain: back off, run the pipeline, draw (or take the top when ``rng``
    is None or T = 0). None when no suffix of ``context`` was ever seen. ``used`` counts
    the words of the output so far, for the penalties.

    The count classes and the chosen candidate are two reads; a batch learned or forgotten
    between them can move the candidate to another class (``candidate_at`` then raises
    ``LookupError``). The step is then read and drawn again, a few times at most."""
    min_p = adjust.knobs.min_p
    for attempt in range(VANISHED_RETRIES):
        d = await distribution(model, context, mask_end, adjust, used)
        if d is None:
            return None
        pipe = d.pipeline(temperature, top_k, top_p, min_p)
        u = rng.random() if rng is not None and temperature != 0.0 else None
        choice = greedy(pipe.groups) if u is None else draw_at(pipe.groups, u)
        try:
            token = await _member(model, d, pipe, choice)
            changed = False
            if d.adjusted:
                plain = d.pipeline(temperature, top_k, top_p, min_p, plain=True)
                if plain.groups:
                    other = greedy(plain.groups) if u is None else draw_at(plain.groups, u)
                    changed = await _member(model, d, plain, other, plain=True) != token
                else:
                    changed = True
        except LookupError:
            if attempt == VANISHED_RETRIES - 1:
                raise
            continue
        # Under the learned model: T = 1, no cut-off, no knob (<end> left out while masked).
        count = pipe.groups[choice.class_index].count
        learned = count / (d.found.total - (d.end_count if d.masked else 0))
        return Pick(
            d.found, token, choice.prob, choice.rank, d.backed_off, d.masked, learned, changed
        )
    raise AssertionError("unreachable")


async def _walk(
    model: ModelReader,
    prefix: list[int],
    opts: Options,
    rng: random.Random,
    adjust: Adjuster = NO_ADJUSTER,
    kept: Sequence[Pick] = (),
) -> tuple[list[int], list[Pick], bool]:
    """One chain: the tokens (start words included) and, per step, what was chosen. It
    goes on from the ``kept`` steps of an earlier chain (none of them <end>)."""
    tokens = [*prefix, *(p.token for p in kept)]
    context = [*(prefix or [BOS]), *tokens[len(prefix) :]]
    used = Counter(tokens)  # the output so far, start words included, for the penalties
    picks = list(kept)
    try:
        for step in range(len(picks), opts.length):
            mask_end = len(picks) < opts.min_words  # words generated, as ``length`` counts
            # The knobs are not foreseen: where they change a draw, the reader guessed wrong.
            masked = max(0, opts.min_words - len(picks))
            model.foresee(Ahead(rng, opts.temperature, opts.length - step, masked))
            pick = await choose_next(
                model,
                context,
                opts.temperature,
                opts.top_k,
                opts.top_p,
                rng,
                mask_end,
                adjust,
                used,
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
            used[pick.token] += 1
    finally:
        model.foresee(None)
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
            changed=p.changed,
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
        knobs=opts.knobs,
    )


async def explain_context(
    model: ModelReader,
    words: str | Sequence[str] | None,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    rows: int | None = 10,
    min_words: int = 0,
    knobs: Knobs = NO_KNOBS,
) -> Explanation:
    """What could follow ``words`` (or start a message, when empty) at ``temperature``;
    <end> masked while ``words`` are fewer than ``min_words``. The penalties treat
    ``words`` as the output so far.

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
        knobs=knobs,
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
    knobs: Knobs = NO_KNOBS,
) -> Explanation:
    """:func:`explain_context` for a context already in token ids (a chain in progress)."""
    temperature = validate_temperature(temperature)
    top_k, top_p = validate_top_k(top_k), validate_top_p(top_p)
    knobs = knobs.validated()
    return await model.run(
        lambda m: _explain_tokens(m, ids, temperature, top_k, top_p, rows, asked, mask_end, knobs)
    )


async def _explain_tokens(
    model: ModelReader,
    ids: Sequence[int],
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    rows: int | None,
    asked: Sequence[str],
    mask_end: bool,
    knobs: Knobs,
) -> Explanation:
    adjust = await adjuster(model, knobs)
    used = Counter(t for t in ids if t != BOS)
    d = await distribution(model, ids, mask_end, adjust, used)
    if d is None:
        raise EmptyModel()
    changed = [s for s in d.specials if s.removed != "masked"]
    # The likeliest after the knobs are among the likeliest by count plus the changed ones.
    top = await model.top_candidates(d.found, None if rows is None else rows + len(changed))
    listed = {t for t, _ in top}
    top += [(s.token, s.count) for s in changed if s.token not in listed]
    top.sort(key=lambda tc: (-tc[1], tc[0]))
    spelled = await model.spell([t for t, _ in top])
    context = await model.spell(list(d.found.context))
    word_of = dict(zip((t for t, _ in top), spelled, strict=True))
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
        knobs=knobs,
        adjusted={word_of[s.token]: (s.logit, s.removed) for s in changed},
        rows=rows,
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


#: What /markov-compare and ``markov-bot compare`` can vary, one at a time.
VARIABLES = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
)


def parse_values(vary: str, text: str) -> tuple[float, ...]:
    """ "1, 1.3,2" → (1.0, 1.3, 2.0) for the knob ``vary``, each value checked."""
    if vary not in VARIABLES:
        raise InvalidOption(f"vary must be one of {', '.join(VARIABLES)}; got “{vary[:30]}”.")
    if vary == "temperature":
        return parse_temperatures(text)
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise InvalidOption(f"Give values of {vary} separated by commas, for example 1,1.3,2.")
    if len(parts) > MAX_COMPARE:
        raise InvalidOption(f"Compare at most {MAX_COMPARE} values at once.")
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise InvalidOption(f"“{part[:20]}” is not a number.") from None
    for v in values:
        with_value(Options(), vary, v).validated()
    return tuple(values)


def with_value(options: Options, vary: str, value: float) -> Options:
    """``options`` with the knob ``vary`` set to ``value``."""
    if vary == "temperature":
        return replace(options, temperature=value)
    if vary == "top_k":
        if value != int(value):
            raise InvalidOption(f"top_k must be a whole number; got {value:g}.")
        return replace(options, top_k=int(value))
    if vary == "top_p":
        return replace(options, top_p=value)
    if vary == "min_p":
        return replace(options, knobs=replace(options.knobs, min_p=value))
    if vary == "repetition_penalty":
        return replace(options, knobs=replace(options.knobs, repetition_penalty=value))
    if vary == "presence_penalty":
        return replace(options, knobs=replace(options.knobs, presence_penalty=value))
    return replace(options, knobs=replace(options.knobs, frequency_penalty=value))


async def compare(
    model: ModelReader,
    start: str | Sequence[str] | None,
    temperatures: Sequence[float],
    options: Options,
    vary: str = "temperature",
) -> list[Generation]:
    """The same start and seed for several values of one knob (T by default), so only
    that knob differs."""
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    return [
        await generate(model, start, with_value(replace(options, seed=seed), vary, v))
        for v in temperatures
    ]
