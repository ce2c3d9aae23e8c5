"""The bundled corpora: public-domain and openly licensed texts every model can start from.

They are package data (``bot/corpora/texts/``, which the repository's top-level ``corpora/``
points to; provenance and licences in its README), read through :mod:`importlib.resources`
so an installed wheel finds them as a checkout does. One utterance per line, which is also the
format ``markov-bot learn`` reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["CORPORA", "CORPUS_DIR", "DEFAULT_CORPUS", "Corpus", "read_lines"]

CORPUS_DIR: Traversable = files(__name__) / "texts"


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str
    file: str
    title: str
    licence: str

    @property
    def path(self) -> Traversable:
        return CORPUS_DIR / self.file


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus("burns", "burns_songs.txt", "Poems and Songs of Robert Burns", "public domain"),
        Corpus("shakespeare", "shakespeare_tiny.txt", "Tiny Shakespeare", "public domain"),
        Corpus(
            "alice", "alice_wonderland.txt", "Alice's Adventures in Wonderland", "public domain"
        ),
        Corpus(
            "sherlock",
            "sherlock_adventures.txt",
            "The Adventures of Sherlock Holmes",
            "public domain",
        ),
        Corpus("grimm", "grimm_fairy_tales.txt", "Grimms' Fairy Tales", "public domain"),
        Corpus("mother-goose", "mother_goose_rhymes.txt", "The Real Mother Goose", "public domain"),
        Corpus(
            "ubuntu-irc",
            "ubuntu_irc_chat.txt",
            "#ubuntu IRC 2004-05 (Kummerfeld et al., ACL 2019)",
            "CC BY 4.0",
        ),
        Corpus("tiny-lesson", "tiny_lesson.txt", "Tiny lesson corpus (worked example)", "CC0"),
    )
}
#: Short lines of verse read like chat messages, and "When" starts hundreds of them.
DEFAULT_CORPUS = CORPORA["burns"]


def read_lines(path: Traversable) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-empty line; one line is one message."""
    with path.open(encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if text:
                yield number, text
