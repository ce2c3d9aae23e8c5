"""A sentence built one word at a time: the state behind ``/markov-step`` and ``markov-bot step``.

Both the Discord buttons and the terminal keys drive this one object, so a class that tries
the stepper in a terminal sees exactly what the buttons would show: the same draws for the
same seed, the same notes, the same limits. It holds no I/O beyond the model it reads.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from bot.core.explain import Explanation
from bot.core.generate import (
    NO_ADJUSTER,
    Adjuster,
    adjuster,
    choose_next,
    explain_tokens,
    resolve_known,
    start_words,
)
from bot.core.model import BOS, EOS, EmptyModel, ModelReader
from bot.core.sampling import (
    MAX_LENGTH,
    MAX_TEMPERATURE,
    NO_KNOBS,
    Knobs,
    validate_min_words,
    validate_temperature,
)
from bot.core.tokenize import join_words
from bot.core.wording import CHANGED_BY_KNOBS

__all__ = ["Stepper"]


@dataclass(slots=True)
class Stepper:
    model: ModelReader
    temperature: float
    seed: int
    tokens: list[int] = field(default_factory=list)  # generated so far (start words included)
    words: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what each step drew, for Back
    ended: bool = False
    min_words: int = 0  # <end> is masked while the sentence has fewer words than this
    unknown: tuple[str, ...] = ()  # typed start words never learned, left out
    start: tuple[str, ...] = ()  # the start words used instead (the known suffix)
    knobs: Knobs = NO_KNOBS  # min-p, penalties, bias and ban, as for /markov
    adjust: Adjuster = NO_ADJUSTER  # the knobs' words resolved to ids, once (see begin)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.temperature = validate_temperature(self.temperature)
        self.min_words = validate_min_words(self.min_words, MAX_LENGTH)
        self.knobs = self.knobs.validated()
        if self.adjust.knobs != self.knobs:
            raise ValueError("the adjuster must be built from the knobs (Stepper.begin does)")
        self.rng = random.Random(self.seed)

    @classmethod
    async def begin(
        cls,
        model: ModelReader,
        start: str | None,
        temperature: float,
        seed: int,
        min_words: int = 0,
        knobs: Knobs = NO_KNOBS,
    ) -> Stepper:
        """A stepper after the typed start words (none: the start of a message). A ban or
        bias word never learned raises InvalidOption naming it."""
        knobs = knobs.validated()
        known = await resolve_known(model, start_words(start))
        adjust = await adjuster(model, knobs)
        spelled = await model.spell(known.ids)
        return cls(
            model,
            temperature,
            seed,
            known.ids,
            spelled,
            min_words=min_words,
            unknown=known.unknown,
            start=tuple(spelled),
            knobs=knobs,
            adjust=adjust,
        )

    @property
    def context(self) -> list[int]:
        return self.tokens or [BOS]

    @property
    def mask_end(self) -> bool:
        return len(self.tokens) < self.min_words

    @property
    def can_advance(self) -> bool:
        return not self.ended and len(self.notes) < MAX_LENGTH

    @property
    def can_go_back(self) -> bool:
        return bool(self.notes)

    @property
    def sentence(self) -> str:
        return join_words(self.words)

    async def candidates(self, rows: int) -> Explanation | None:
        """The next word's distribution at the current temperature, after the knobs (the
        sentence so far is the output the penalties see); None once ended."""
        if self.ended:
            return None
        return await explain_tokens(
            self.model,
            self.context,
            self.temperature,
            rows=rows,
            mask_end=self.mask_end,
            knobs=self.knobs,
        )

    async def sample(self) -> str:
        """Draw the next word with the seeded generator; the note describing the step."""
        return await self._advance(self.rng)

    async def greedy(self) -> str:
        """Take the most likely next word."""
        return await self._advance(None)

    async def _advance(self, rng: random.Random | None) -> str:
        if not self.can_advance:
            raise ValueError("the sentence has ended")  # buttons and keys are disabled then
        used = Counter(self.tokens)  # start words included, as generate counts them
        context, temperature, mask_end = self.context, self.temperature, self.mask_end
        pick = await self.model.run(
            lambda m: choose_next(
                m, context, temperature, None, None, rng, mask_end, self.adjust, used
            )
        )
        if pick is None:
            raise EmptyModel()
        word = (await self.model.spell([pick.token]))[0]
        how = "drew" if rng is not None and self.temperature > 0 else "took the top word"
        note = (
            f"{how} “{word}” — probability {pick.prob:.1%}, rank {pick.rank} of "
            f"{pick.found.candidates - pick.end_masked}"
            + (" (<end> masked)" if pick.end_masked else "")
            + ("; backed off to the word frequencies" if pick.found.order == 0 else "")
            + (f"; {CHANGED_BY_KNOBS}" if pick.changed else "")
        )
        self.notes.append(note)
        if pick.token == EOS:
            self.ended = True
        else:
            self.tokens.append(pick.token)
            self.words.append(word)
        return note

    def back(self) -> None:
        """Undo the last step (the start words stay)."""
        if not self.notes:
            return
        self.notes.pop()
        if self.ended:
            self.ended = False
        else:
            self.tokens.pop()
            self.words.pop()

    def colder(self) -> None:
        self.temperature = round(self.temperature / 2, 4)

    def warmer(self) -> None:
        t = self.temperature
        self.temperature = min(MAX_TEMPERATURE, round(t * 2, 4) if t > 0 else 0.1)
