"""Bundled corpora that work offline: collections shipped inside the ``music21`` package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

DEFAULT_CORPUS = "bach-chorales"


def _music21_corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def _bach_chorales() -> list[Path]:
    """The distinct chorales of music21's chorale iterator, one file each (MusicXML preferred)."""
    from music21 import corpus

    chosen: dict[Path, None] = {}
    for name in corpus.chorales.Iterator(returnType="filename"):
        found = corpus.getWork(name)
        candidates = [Path(p) for p in (found if isinstance(found, list) else [found])]
        # getWork matches by prefix (bwv245.3 also finds bwv245.37): prefer the exact name.
        stem = name.split("/")[-1]
        exact = [p for p in candidates if p.stem == stem] or candidates[:1]
        chosen[sorted(exact, key=lambda p: (p.suffix != ".mxl", p.suffix != ".xml"))[0]] = None
    return list(chosen)


def _folder(name: str) -> Callable[[], list[Path]]:
    def files() -> list[Path]:
        return sorted((_music21_corpus_root() / name).glob("*.abc"))

    return files


@dataclass(frozen=True)
class Corpus:
    """A named, offline collection of pieces in one style."""

    name: str
    description: str
    files: Callable[[], list[Path]]
    polyphonic: bool
    program: int = 0  # the General MIDI instrument its music is played with by default


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus("bach-chorales", "J. S. Bach's four-part chorales (MusicXML, Humdrum)", _bach_chorales, True,
               program=19),  # organ
        Corpus("oneills-irish", "O'Neill's Music of Ireland (1850), Irish folk melodies (ABC)",
               _folder("oneills1850"), False),
        Corpus("ryans-mammoth", "Ryan's Mammoth Collection (1883), fiddle tunes (ABC)",
               _folder("ryansMammoth"), False),
    )
}


def get_corpus(name: str) -> Corpus:
    """The bundled corpus called ``name``; a clear error lists the choices otherwise."""
    try:
        return CORPORA[name]
    except KeyError:
        raise UserError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}") from None


def instrument_of(corpus: str | None) -> int:
    """The General MIDI program that music of ``corpus`` is played with (piano for a user's own folder)."""
    return CORPORA[corpus].program if corpus in CORPORA else 0


def count_pieces(files: list[Path]) -> int:
    """Pieces in a list of corpus files, without parsing: ABC files are counted by their ``X:`` tunes."""
    total = 0
    for f in files:
        if f.suffix == ".abc":
            total += sum(1 for line in f.read_text(errors="replace").splitlines() if line.startswith("X:"))
        else:
            total += 1
    return total
