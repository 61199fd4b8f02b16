"""gancomposer: learn a musical style from pieces and compose new ones with a recurrent GAN.

Data flows one way: read (:mod:`.io`) -> encode (:mod:`.encoding`) -> dataset (:mod:`.dataset`)
-> model -> train -> sample -> decode / render / evaluate -> CLI / web.

The music half (reading, encodings, metrics, audio, pictures) imports no torch; the learning half loads only
when asked for, so ``import gancomposer`` stays light.
"""

from importlib.metadata import PackageNotFoundError, version

from .encoding import Encoding, PianoRoll, snap_to_grid
from .errors import UserError
from .io import read_file
from .io.midi import read_midi, write_midi
from .piece import Piece

try:
    __version__ = version("gancomposer")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    if name in ("Composer", "ComposedPiece"):
        from . import compose

        return getattr(compose, name)
    raise AttributeError(f"module 'gancomposer' has no attribute {name!r}")


__all__ = [
    "ComposedPiece", "Composer", "Encoding", "PianoRoll", "Piece", "UserError", "read_file", "read_midi",
    "snap_to_grid", "write_midi",
]
