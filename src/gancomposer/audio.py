"""WAV audio from a piece: FluidSynth with a General MIDI soundfont when both are installed, otherwise a
small built-in NumPy synthesizer, so audio always works offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from .files import atomic_path
from .io.midi import write_midi
from .piece import Piece

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2")
#: Instrument names accepted by ``--instrument`` and their General MIDI programs.
INSTRUMENTS = {"piano": 0, "harpsichord": 6, "organ": 19, "strings": 48, "choir": 52, "flute": 73}
SAMPLE_RATE = 44100
#: Seconds of audio after the last note ends (the release), for both engines: a WAV lasts the music plus this.
TAIL_S = 1.0


def find_soundfont() -> str | None:
    """A General MIDI soundfont on this machine (``$GANCOMPOSER_SOUNDFONT`` first), or None."""
    for path in (os.environ.get("GANCOMPOSER_SOUNDFONT"),) + SOUNDFONTS:
        if path and Path(path).is_file():
            return path
    return None


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and find_soundfont() is not None


def _write_wav(samples: np.ndarray, path: str | os.PathLike, rate: int = SAMPLE_RATE) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())


def synthesize(piece: Piece, program: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float samples of ``piece`` from additive tones: an organ (sustained partials) for programs
    16-23 and 48-55, a plucked/struck decaying tone otherwise. Ends one second after the last note."""
    sustained = 16 <= program <= 23 or 48 <= program <= 55 or 72 <= program <= 79
    sec_per_quarter = 60.0 / piece.tempo
    total = int((piece.end * sec_per_quarter + TAIL_S) * rate)
    out = np.zeros(total, np.float32)
    partials = [(1, 1.0), (2, 0.5), (3, 0.3), (4, 0.2), (6, 0.1)] if sustained else [(1, 1.0), (2, 0.4), (3, 0.15)]
    vel = piece.velocity if piece.velocity is not None else np.full(len(piece), 80)
    for p, s, d, v in zip(piece.pitch.tolist(), piece.start.tolist(), piece.duration.tolist(), vel.tolist()):
        start = int(s * sec_per_quarter * rate)
        release = 0.08 if sustained else 0.3
        n = int((d * sec_per_quarter + release) * rate)
        n = min(n, total - start)
        if n <= 0:
            continue
        t = np.arange(n, dtype=np.float32) / rate
        f = 440.0 * 2 ** ((p - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * f * k * t) for k, a in partials if f * k < rate / 2)
        held = d * sec_per_quarter
        env = np.minimum(1.0, t / 0.01)  # 10 ms attack, no click
        if sustained:
            env *= np.where(t < held, 1.0, np.exp(-(t - held) / 0.03))
        else:
            env *= np.exp(-t * 2.5) * np.where(t < held, 1.0, np.exp(-(t - held) / 0.05))
        out[start : start + n] += (v / 127.0) * 0.12 * tone * env
    peak = np.abs(out).max()
    return out / peak * 0.8 if peak > 0.8 else out


def _trim_wav(src: Path, dst: str | os.PathLike, seconds: float) -> None:
    """Copy a 16-bit WAV cut to ``seconds`` (FluidSynth renders reverb tails for several seconds), fading
    out over the last 50 ms so the cut does not click."""
    with wave.open(str(src), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    keep = frames[: int(seconds * rate)].astype(np.float32)
    fade = min(len(keep), int(0.05 * rate))
    if fade:
        keep[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)[:, None]
    with atomic_path(dst) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(width)
            w.setframerate(rate)
            w.writeframes(keep.astype("<i2").tobytes())


def render_wav(piece: Piece, path: str | os.PathLike, *, program: int = 0, engine: str = "auto") -> str:
    """Write ``piece`` as a 44.1 kHz WAV; returns the engine used ("fluidsynth" or "numpy")."""
    use_fluid = engine == "fluidsynth" or (engine == "auto" and fluidsynth_available())
    if use_fluid:
        with tempfile.TemporaryDirectory() as tmp:
            mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
            write_midi(piece, mid, program=program)
            r = subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE), "-F", str(wav),
                                find_soundfont(), str(mid)], capture_output=True, timeout=300)
            if r.returncode == 0 and wav.is_file() and wav.stat().st_size > 44:
                _trim_wav(wav, path, piece.end * 60.0 / piece.tempo + TAIL_S)
                return "fluidsynth"
            if engine == "fluidsynth":
                raise RuntimeError(f"fluidsynth failed: {r.stderr.decode(errors='replace')[:200]}")
    _write_wav(synthesize(piece, program), path)
    return "numpy"


def wav_info(path: str | os.PathLike) -> tuple[float, float]:
    """``(seconds, peak amplitude 0..1)`` of a 16-bit WAV file."""
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        seconds = w.getnframes() / w.getframerate()
        width = w.getsampwidth()
    data = np.frombuffer(frames, dtype="<i2" if width == 2 else np.int32)
    peak = float(np.abs(data).max() / (32767 if width == 2 else 2**31 - 1)) if len(data) else 0.0
    return seconds, peak
