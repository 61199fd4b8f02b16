"""A folder of hostile inputs: every way a file can be unusable, built by hand."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

from helpers import midi_file, note_events, scale_piece, track_chunk, vlq, write_piece

NOTES = note_events([(60, 0, 480), (64, 480, 480)])


def make_valid(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_piece(folder / f"good{i}.mid", scale_piece(offset=i)) for i in range(n)]


def make_hostile(folder: Path) -> list[str]:
    """Write 30 unusable entries into ``folder``; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    good = midi_file([NOTES])
    many = note_events([(60 + (i % 12), i * 2, 1) for i in range(120_000)])
    files: dict[str, bytes] = {
        "empty.mid": b"",
        "truncated.mid": good[: len(good) // 2],
        "header_only.mid": good[:14],
        "not_music.mid": b"Hello, this is a plain text file and not music at all.\n" * 4,
        "png_named.mid": b"\x89PNG\r\n\x1a\n" + os.urandom(200),
        "random_bytes.midi": os.urandom(3000),
        "huge.mid": midi_file([NOTES]) + os.urandom(5 * 1024 * 1024),
        "very_long.mid": midi_file([note_events([(60, 0, 480), (62, 2**27, 480)])]),
        "too_many_notes.mid": midi_file([many]),
        "no_notes.mid": midi_file([b"\x00\xff\x51\x03\x07\xa1\x20"]),
        "drums_only.mid": midi_file([note_events([(36, 0, 240), (38, 480, 240)], channel=9)]),
        "smpte.mid": midi_file([NOTES], division=0xE728),
        "running_status_no_status.mid": midi_file([bytes([0, 60, 64, 96, 0x80, 60, 0])]),
        "zero_division.mid": midi_file([NOTES], division=0),
        "chunk_too_long.mid": good[:14] + b"MTrk" + struct.pack(">I", 10_000) + NOTES,
        "zero_length_notes.mid": midi_file([note_events([(60, 0, 0), (62, 480, 0)])]),
        "bad_header_length.mid": b"MThd" + struct.pack(">I", 2) + good[8:],
        "endless_vlq.mid": good[:14] + track_chunk(b"\xff\xff\xff\xff\xff\xff\xff\x90\x3c\x40"),
        "unterminated_sysex.mid": good[:14] + track_chunk(b"\x00\xf0" + vlq(5000) + b"\x01\x02"),
        "bad_format.mid": b"MThd" + struct.pack(">IHHH", 6, 7, 1, 480) + track_chunk(NOTES),
        "broken.mxl": b"PK\x03\x04 this is not really a zip archive",
        "malformed.musicxml": b"<?xml version='1.0'?><score-partwise><part id='P1'><measure",
        "not_a_score.xml": b"<?xml version='1.0'?><html><body>hello</body></html>",
        "gibberish.abc": b"\x00\x01\x02 this is { not ] abc ))) at all",
        "no_notes.abc": b"X:1\nT:Silence\nM:4/4\nK:C\n",
        "gibberish.krn": b"**kern\n*garbage\n!!!!\n=zzz\n*-\n\x00\x00",
        "binary.krn": os.urandom(2000),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(folder / "empty_zip.mxl", "w") as z:
        z.writestr("META-INF/container.xml", "<container/>")
    (folder / "x.mid").mkdir()
    os.symlink("loop.mid", folder / "loop.mid")
    os.symlink("does_not_exist.mid", folder / "dangling.mid")
    return sorted(files) + ["empty_zip.mxl", "x.mid", "loop.mid", "dangling.mid"]
