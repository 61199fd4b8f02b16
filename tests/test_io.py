"""Readers and the MIDI writer."""

import numpy as np
import pytest
import symusic
from helpers import midi_file, note_events, piece, scale_piece

from gancomposer.io import find_music_files, read_file
from gancomposer.io.midi import TICKS_PER_QUARTER, read_midi, write_midi
from gancomposer.errors import UserError

MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>S</part-name></score-part>
             <score-part id="P2"><part-name>B</part-name></score-part></part-list>
  <part id="P1">
    <measure number="0" implicit="yes">
      <attributes><divisions>2</divisions><key><fifths>0</fifths></key>
        <time><beats>3</beats><beat-type>4</beat-type></time></attributes>
      <note><pitch><step>G</step><octave>4</octave></pitch><duration>2</duration></note>
    </measure>
    <measure number="1">
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration><tie type="start"/></note>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>1</duration><tie type="stop"/></note>
      <note><pitch><step>B</step><octave>4</octave></pitch><duration>1</duration></note>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration></note>
    </measure>
  </part>
  <part id="P2">
    <measure number="0" implicit="yes">
      <attributes><divisions>2</divisions><time><beats>3</beats><beat-type>4</beat-type></time></attributes>
      <note><pitch><step>G</step><octave>2</octave></pitch><duration>2</duration></note>
    </measure>
    <measure number="1">
      <note><pitch><step>C</step><octave>3</octave></pitch><duration>6</duration></note>
    </measure>
  </part>
</score-partwise>
"""

ABC = """X:1
T:First
M:4/4
L:1/4
K:C
CDEF|G4|]

X:2
T:Second
M:3/4
L:1/8
K:G
GABc d2|g6|]
"""

KERN = """**kern\t**kern
*M2/4\t*M2/4
=1\t=1
4C\t4c
4D\t4e
=2\t=2
2E\t2g
==\t==
*-\t*-
"""


def test_midi_write_read_keeps_notes_tempo_metre_and_tpq(tmp_path):
    p = scale_piece()
    p.tempo, p.time_signature = 72.0, (3, 4)
    write_midi(p, tmp_path / "a.mid")
    score = symusic.Score(str(tmp_path / "a.mid"))
    assert score.ticks_per_quarter == TICKS_PER_QUARTER and TICKS_PER_QUARTER % 4 == 0
    back = read_midi(tmp_path / "a.mid")
    assert back.notes() == p.notes()
    assert back.tempo == pytest.approx(72.0, abs=0.01)
    assert back.time_signature == (3, 4)


def test_midi_format_0_and_1_and_drums_left_out(tmp_path):
    melody = note_events([(60, 0, 480), (62, 480, 240)])
    drums = note_events([(36, 0, 120)], channel=9)
    (tmp_path / "f0.mid").write_bytes(midi_file([melody], fmt=0))
    (tmp_path / "f1.mid").write_bytes(midi_file([melody, drums, note_events([(48, 0, 960)], channel=1)]))
    assert read_midi(tmp_path / "f0.mid").notes() == [(60, 0.0, 1.0), (62, 1.0, 0.5)]
    f1 = read_midi(tmp_path / "f1.mid")
    assert f1.notes() == [(48, 0.0, 2.0), (60, 0.0, 1.0), (62, 1.0, 0.5)]
    with_drums = read_midi(tmp_path / "f1.mid", include_drums=True)
    assert 36 in with_drums.pitch.tolist()


def test_musicxml_with_pickup_and_ties(tmp_path):
    f = tmp_path / "a.musicxml"
    f.write_text(MUSICXML)
    (p,) = read_file(f)
    assert p.time_signature == (3, 4)
    # the one-beat pickup is shifted so the first full bar starts on a bar line (t = 3)
    assert p.notes() == [(43, 2.0, 1.0), (67, 2.0, 1.0), (48, 3.0, 3.0), (72, 3.0, 1.5),
                         (71, 4.5, 0.5), (72, 5.0, 1.0)]


def test_each_note_keeps_its_score_part_or_midi_track(tmp_path):
    f = tmp_path / "a.musicxml"
    f.write_text(MUSICXML)
    (p,) = read_file(f)
    assert [(n, int(k)) for n, k in zip(p.notes(), p.part)] == [
        ((43, 2.0, 1.0), 1), ((67, 2.0, 1.0), 0), ((48, 3.0, 3.0), 1), ((72, 3.0, 1.5), 0),
        ((71, 4.5, 0.5), 0), ((72, 5.0, 1.0), 0)]
    two = piece([(60, 0, 1), (64, 0, 1), (62, 1, 1)], part=[1, 0, 0])
    write_midi(two, tmp_path / "two.mid")
    back = read_midi(tmp_path / "two.mid")
    assert [(n, int(k)) for n, k in zip(back.notes(), back.part)] == [((60, 0.0, 1.0), 1), ((64, 0.0, 1.0), 0),
                                                                      ((62, 1.0, 1.0), 0)]
    write_midi(piece([(60, 0, 1)]), tmp_path / "one.mid")
    assert read_midi(tmp_path / "one.mid").part is None  # one track: no parts to tell apart
    from gancomposer.cache import pieces_from_bytes, pieces_to_bytes

    again = pieces_from_bytes(pieces_to_bytes([back, piece([(60, 0, 1)])]))
    assert again[0].part.tolist() == back.part.tolist() and again[1].part is None


def test_abc_file_with_two_tunes_gives_two_pieces(tmp_path):
    f = tmp_path / "tunes.abc"
    f.write_text(ABC)
    first, second = read_file(f)
    assert first.notes() == [(60, 0.0, 1.0), (62, 1.0, 1.0), (64, 2.0, 1.0), (65, 3.0, 1.0), (67, 4.0, 4.0)]
    assert second.time_signature == (3, 4)
    assert second.pitch.tolist() == [67, 69, 71, 72, 74, 79]  # K:G has no accidentals on these
    assert first.name.endswith("#1") and second.name.endswith("#2")


def test_humdrum(tmp_path):
    f = tmp_path / "a.krn"
    f.write_text(KERN)
    (p,) = read_file(f)
    assert p.time_signature == (2, 4)
    assert sorted(p.notes()) == [(48, 0.0, 1.0), (50, 1.0, 1.0), (52, 2.0, 2.0),
                                 (60, 0.0, 1.0), (64, 1.0, 1.0), (67, 2.0, 2.0)]


def test_find_music_files_recurses_and_sorts(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    for name in ("b/c/z.mid", "b/a.MID", "x.abc", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files, problems = find_music_files([tmp_path, tmp_path / "missing.mid"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["x.abc", "b/a.MID", "b/c/z.mid"]
    assert problems == [(str(tmp_path / "missing.mid"), "no such file or folder")]


def test_unknown_suffix_is_refused(tmp_path):
    f = tmp_path / "a.wav"
    f.write_bytes(b"RIFF")
    with pytest.raises(UserError, match="unknown file type"):
        read_file(f)


def test_piece_sorts_and_validates():
    p = piece([(64, 1, 1), (60, 1, 1), (67, 0, 1)])
    assert p.notes() == [(67, 0.0, 1.0), (60, 1.0, 1.0), (64, 1.0, 1.0)]
    assert p.end == 2.0 and p.transpose(2).pitch.tolist() == [69, 62, 66]
    with pytest.raises(ValueError):
        type(p)(np.array([60]), np.array([0.0, 1.0]), np.array([1.0]))


def test_atomic_writes_leave_no_temporary_and_give_ordinary_permissions(tmp_path):
    import os
    import stat

    from gancomposer.files import atomic_path, write_bytes_atomic

    target = tmp_path / "out.bin"
    write_bytes_atomic(target, b"done")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"done" and os.listdir(tmp_path) == ["out.bin"]
