"""One request's reads of a model, remembered for the rest of that request.

A redrawn attempt walks the same first contexts again (every attempt without a start
begins at the start of a message), so the originality check's redraws cost reads the
request already made. :class:`Remembering` answers those from memory; it lives for one
call of :func:`bot.core.generate.generate`, so a learned batch is seen by the next request.
When the model changes under the request (a candidate vanished), the memory is dropped
and the reader asked again, as without it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.model import Copy, Found, ModelReader

__all__ = ["Remembering"]


class Remembering:
    """A :class:`bot.core.model.ModelReader` that remembers lookups and candidates."""

    def __init__(self, model: ModelReader) -> None:
        self.model = model
        self._found: dict[tuple[int, ...] | None, Found | None] = {}
        # Keyed by the Found's identity; the Found is kept with the answer, so that identity
        # cannot be reused by another object while the entry exists.
        self._at: dict[tuple[int, int, int, tuple[int, ...]], tuple[Found, int]] = {}

    @property
    def order(self) -> int:
        return self.model.order

    async def lookup(self, context: Sequence[int]) -> Found | None:
        key = tuple(context[-self.model.order :])
        if key not in self._found:
            self._found[key] = await self.model.lookup(context)
        return self._found[key]

    async def candidate_at(
        self, found: Found, count: int, offset: int, excluding: Sequence[int] = ()
    ) -> int:
        key = (id(found), count, offset, tuple(excluding))
        if key not in self._at:
            try:
                token = await self.model.candidate_at(found, count, offset, excluding)
                self._at[key] = (found, token)
            except LookupError:
                self._found.clear()  # the model changed: read it afresh
                self._at.clear()
                raise
        return self._at[key][1]

    async def top_candidates(self, found: Found, limit: int | None) -> list[tuple[int, int]]:
        return await self.model.top_candidates(found, limit)

    async def count_of(self, found: Found, token: int) -> int:
        return await self.model.count_of(found, token)

    async def counts_of(self, found: Found, tokens: Sequence[int]) -> dict[int, int]:
        return await self.model.counts_of(found, tokens)

    async def unigram(self) -> Found | None:
        if None not in self._found:  # the key no context tuple can be
            self._found[None] = await self.model.unigram()
        return self._found[None]

    async def resolve(self, words: Sequence[str]) -> list[int]:
        return await self.model.resolve(words)

    async def spell(self, tokens: Sequence[int]) -> list[str]:
        return await self.model.spell(tokens)

    async def copy_of(self, tokens: Sequence[int], at_least: int) -> Copy:
        return await self.model.copy_of(tokens, at_least)
