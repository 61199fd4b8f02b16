"""gancomposer: learn a musical style from pieces and compose new ones with a recurrent GAN.

Data flows one way: read (:mod:`.io`) -> encode (:mod:`.encoding`) -> dataset (:mod:`.dataset`)
-> model -> train -> sample -> decode / render / evaluate -> CLI / web.
"""

from .encoding import Encoding, decode, encode, snap_to_grid
from .io import read_file
from .io.midi import read_midi, write_midi
from .piece import MusicError, Piece



def __getattr__(name: str):
    # the torch half loads only when asked for, so reading and encoding music stays light
    if name in ("Composer", "ComposedPiece"):
        from . import compose

        return getattr(compose, name)
    raise AttributeError(f"module 'gancomposer' has no attribute {name!r}")


__all__ = [
    "ComposedPiece", "Composer", "Encoding", "MusicError", "Piece", "decode", "encode", "read_file", "read_midi",
    "snap_to_grid", "write_midi",
]
__version__ = "0.1.0"
