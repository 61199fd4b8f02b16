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
    files.update(odd_meters_and_structure())
    files.update(hostile_scores(folder))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(folder / "empty_zip.mxl", "w") as z:
        z.writestr("META-INF/container.xml", "<container/>")
    write_bomb(folder / "bomb.mxl", 64)
    (folder / "x.mid").mkdir()
    os.symlink("loop.mid", folder / "loop.mid")
    os.symlink("does_not_exist.mid", folder / "dangling.mid")
    return sorted(files) + ["empty_zip.mxl", "bomb.mxl", "x.mid", "loop.mid", "dangling.mid"]


def time_signature(num: int, den_power: int) -> bytes:
    return b"\x00\xff\x58\x04" + bytes([num, den_power, 24, 8])


def odd_meters_and_structure() -> dict[str, bytes]:
    """MIDI files whose notes are fine but whose meter, range or structure is unusable."""
    notes = note_events([(60 + i % 5, i * 240, 240) for i in range(64)])
    every_bar = b"".join(time_signature(3 + i % 5, 2 + i % 2) + note_events([(62, 0, 240)]) for i in range(32))
    return {
        "meter_1_32.mid": midi_file([time_signature(1, 5) + notes]),
        "meter_0_4.mid": midi_file([time_signature(0, 2) + notes]),
        "meter_7_1.mid": midi_file([time_signature(7, 0) + notes]),
        "meter_255_1.mid": midi_file([time_signature(255, 0) + notes]),
        "meter_2_to_the_255.mid": midi_file([time_signature(4, 255) + notes]),
        "meter_1_32_changing_every_bar.mid": midi_file([time_signature(1, 5) + every_bar]),
        "outlier_pitches_0_and_127.mid": midi_file([note_events([(0, 0, 480), (127, 480, 480), (0, 960, 960)])]),
        "format_2.mid": midi_file([NOTES, NOTES], fmt=2),
        "notes_past_the_length_cap.mid": midi_file([note_events([(60 + i, 2**23 + i * 480, 480) for i in range(8)])]),
        "ten_thousand_tracks.mid": midi_file([note_events([(60, i, 1)]) for i in range(10_000)]),
        "velocity_zero_only.mid": midi_file([bytes([0, 0x90, 60, 0, 0x60, 0x90, 62, 0])]),
    }


def write_bomb(path: Path, mebibytes: int) -> Path:
    """A ``.mxl`` whose score expands to ``mebibytes`` MiB of XML from about 1/1000 of that on disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("META-INF/container.xml", CONTAINER)
        with z.open("score.xml", "w", force_zip64=True) as w:
            w.write(b"<?xml version='1.0'?><score-partwise version='3.1'><!-- ")
            block = b"a" * (1 << 20)
            for _ in range(mebibytes):
                w.write(block)
            w.write(b" --></score-partwise>")
    return path


CONTAINER = ('<?xml version="1.0"?><container><rootfiles><rootfile full-path="score.xml" '
             'media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>')


def musicxml(doctype: str = "", body: str = "", beats: int = 4, beat_type: int = 4) -> bytes:
    """A one-part MusicXML score with eight quarter notes, plus whatever ``doctype``/``body`` inject."""
    note = "<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>"
    return (f"<?xml version='1.0'?>{doctype}<score-partwise version='3.1'><part-list><score-part id='P1'>"
            f"<part-name>x</part-name></score-part></part-list><part id='P1'><measure number='1'><attributes>"
            f"<divisions>1</divisions><time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time>"
            f"</attributes>{body}{note * 4}</measure><measure number='2'>{note * 4}</measure></part>"
            "</score-partwise>").encode()


def hostile_scores(folder: Path) -> dict[str, bytes]:
    """Scores that attack the XML parser, or whose meter cannot be windowed."""
    laughs = "<!ENTITY a0 'ha'>" + "".join(f"<!ENTITY a{i} '{('&a%d;' % (i - 1)) * 10}'>" for i in range(1, 10))
    secret = folder / "secret.txt"  # not a music file: never listed, and an entity must not read it
    secret.write_text("<note><pitch><step>D</step><octave>5</octave></pitch><duration>1</duration></note>" * 8)
    mxl = folder / "laughs.mxl"
    with zipfile.ZipFile(mxl, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml", CONTAINER)
        z.writestr("score.xml", musicxml(f"<!DOCTYPE score-partwise [{laughs}]>", "<words>&a9;</words>"))
    return {
        "billion_laughs.musicxml": musicxml(f"<!DOCTYPE score-partwise [{laughs}]>",
                                            "<direction><direction-type><words>&a9;</words></direction-type>"
                                            "</direction>"),
        "external_entity.musicxml": musicxml(f"<!DOCTYPE score-partwise [<!ENTITY x SYSTEM 'file://{secret}'>]>",
                                             "&x;").replace(b"<note>", b"<nope>").replace(b"</note>", b"</nope>"),
        "parameter_entity.musicxml": musicxml(f"<!DOCTYPE score-partwise [<!ENTITY % p SYSTEM 'file://{secret}'> %p;]>"
                                              ).replace(b"<note>", b"<nope>").replace(b"</note>", b"</nope>"),
        "meter_1_64.musicxml": musicxml(beats=1, beat_type=64),
        "negative_durations.musicxml": musicxml().replace(b"<duration>1</duration>", b"<duration>-1</duration>"),
        "zero_durations.musicxml": musicxml().replace(b"<duration>1</duration>", b"<duration>0</duration>"),
        "deeply_nested.musicxml": b"<?xml version='1.0'?><score-partwise>" + b"<a>" * 200_000 + b"</a>" * 200_000
                                  + b"</score-partwise>",
        "utf16_garbage.musicxml": "<?xml version='1.0' encoding='utf-16'?><score-partwise>\x00\ud800".encode(
            "utf-8", "surrogatepass"),
        "laughs.mxl": mxl.read_bytes(),
        "meter_1_32.abc": b"X:1\nT:Tiny bars\nM:1/32\nL:1/32\nK:C\nC|D|E|F|G|A|B|c|\n",
        "ten_thousand_tunes.abc": b"".join(b"X:%d\nT:t\nM:4/4\nL:1/4\nK:C\nCDEF|\n\n" % i for i in range(1, 10_001)),
        "meter_1_32.krn": b"**kern\n*M1/32\n32c\n=\n32d\n=\n32e\n=\n*-\n",
    }
