"""Split hygiene before training (core/data/split_hygiene.py, core/training/checks.py): speakers and audio shared
between the training splits and dev/test are found, named in one line and refused unless allowed."""
import numpy as np
import pandas as pd
import pytest

from core.data.manifest import known_speakers
from core.data.split_hygiene import (DuplicateAudio, SharedSpeaker, SpeakerOverlap, duplicate_audio, find_split_overlap,
                                     is_evaluation_split, speaker_overlap)
from core.training.checks import TrainingConfigError, check_split_hygiene


def _table(rows: list[tuple[str, str, str | None]], paths: dict[str, str] | None = None) -> pd.DataFrame:
    """A minimal utterance table: (file, split, speaker) rows; paths default to the file ids."""
    paths = paths or {}
    return pd.DataFrame({"path": [paths.get(f, f) for f, _, _ in rows], "split": [s for _, s, _ in rows],
                         "speaker": [spk for _, _, spk in rows]},
                        index=pd.Index([f for f, _, _ in rows], name="file"))


def _write(folder, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def test_known_speakers_unknown_empty_and_missing_become_nan():
    raw = pd.Series([" spk1 ", "Unknown", " UNK ", "", None, np.nan, "N/A", "-", "none", "Spk2"],
                    index=pd.Index(list("abcdefghij"), name="file"), name="speaker")
    known = known_speakers(raw)
    assert list(known.index) == list(raw.index) and known.name == "speaker"
    assert known.iloc[0] == "spk1" and known.iloc[-1] == "Spk2"
    assert known.iloc[1:-1].isna().all()


def test_evaluation_splits_are_dev_and_every_test():
    assert [s for s in ["train", "dev", "test", "test2", "test3", "unlabelled"] if is_evaluation_split(s)] == [
        "dev", "test", "test2", "test3"]


def test_speaker_overlap_names_speakers_and_counts_per_split():
    corpus = _table([("t1", "train", "spk03"), ("t2", "train", "spk03"), ("t3", "train", "spk03"),
                     ("t4", "train", "spk07"), ("t5", "train", "Unknown"), ("t6", "train", ""),
                     ("t7", "train", "spk09"), ("t8", "train", None),
                     ("e1", "test", "spk03"), ("e2", "test", "spk03"), ("e3", "test", "spk07"),
                     ("e4", "test", "unknown"), ("e5", "test", ""), ("e6", "test", None),
                     ("d1", "dev", "spk07"), ("d2", "dev", "spk11"),
                     ("x1", "test2", "spk09"),
                     ("u1", "unlabelled", "spk11"), ("u2", "unlabelled", "spk03")])
    assert speaker_overlap(corpus) == (
        SpeakerOverlap("dev", (SharedSpeaker("spk07", 1, 1),)),
        SpeakerOverlap("test", (SharedSpeaker("spk03", 3, 2), SharedSpeaker("spk07", 1, 1))),
        SpeakerOverlap("test2", (SharedSpeaker("spk09", 1, 1),)))


def test_speaker_overlap_is_empty_for_disjoint_or_unknown_speakers():
    corpus = _table([("t1", "train", "a"), ("t2", "train", "Unknown"), ("e1", "test", "unknown"),
                     ("e2", "test", "b"), ("d1", "dev", None), ("u1", "unlabelled", "a")])
    assert speaker_overlap(corpus) == ()
    assert speaker_overlap(_table([("t1", "train", None), ("e1", "test", None)])) == ()


def test_duplicate_audio_finds_identical_files_across_splits_only(tmp_path):
    same, other = b"RIFF" + bytes(range(256)) * 40, b"RIFF" + bytes(range(255, -1, -1)) * 40  # equal sizes
    paths = {"train/a.wav": _write(tmp_path, "a.wav", same), "test/b.wav": _write(tmp_path, "b.wav", same),
             "train/c.wav": _write(tmp_path, "c.wav", other), "train/c2.wav": _write(tmp_path, "c2.wav", other),
             "test/d.wav": _write(tmp_path, "d.wav", other[:-1] + b"x"),  # same size, other bytes
             "unl/e.wav": _write(tmp_path, "e.wav", b"e" * 100), "dev/f.wav": _write(tmp_path, "f.wav", b"e" * 100),
             "unl/g.wav": _write(tmp_path, "g.wav", b"g" * 50), "train/h.wav": _write(tmp_path, "h.wav", b"g" * 50),
             "test/gone.wav": str(tmp_path / "gone.wav")}  # cannot be stat'ed: left to audio loading
    corpus = _table([("train/a.wav", "train", None), ("test/b.wav", "test", None), ("train/c.wav", "train", None),
                     ("train/c2.wav", "train", None), ("test/d.wav", "test", None), ("unl/e.wav", "unlabelled", None),
                     ("dev/f.wav", "dev", None), ("unl/g.wav", "unlabelled", None), ("train/h.wav", "train", None),
                     ("test/gone.wav", "test", None)], paths)
    assert duplicate_audio(corpus) == (DuplicateAudio("train", "test", (("train/a.wav", "test/b.wav"),)),
                                       DuplicateAudio("unlabelled", "dev", (("unl/e.wav", "dev/f.wav"),)))


def test_duplicate_audio_tells_files_apart_after_their_first_block(tmp_path):
    head = bytes(64 * 1024)  # equal first 64 KiB (e.g. leading digital silence), different tails
    corpus = _table([("a", "train", None), ("b", "test", None)],
                    {"a": _write(tmp_path, "a.wav", head + b"aa"), "b": _write(tmp_path, "b.wav", head + b"ab")})
    assert duplicate_audio(corpus) == ()


def test_refusal_names_speakers_and_counts_in_one_line():
    rows = [(f"t{i}", "train", f"spk{i:02d}") for i in range(8)] + [(f"e{i}", "test", f"spk{i:02d}") for i in range(7)]
    rows += [("t9", "train", "spk00"), ("d0", "dev", "spk03")]
    with pytest.raises(TrainingConfigError) as err:
        check_split_hygiene(_table(rows))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("speaker overlap between splits: train/dev share 1 speaker (spk03: 1 train, 1 dev), "
                              "train/test share 7 speakers (spk00: 2 train, 1 test; spk01: 1 train, 1 test; ")
    assert message.endswith("spk04: 1 train, 1 test; and 2 more); pass --allow-speaker-overlap to train anyway")


def test_refusal_of_duplicates_and_what_is_allowed(tmp_path):
    paths = {"a": _write(tmp_path, "a.wav", b"x" * 10), "b": _write(tmp_path, "b.wav", b"x" * 10)}
    corpus = _table([("a", "train", "s1"), ("b", "test", "s1")], paths)
    with pytest.raises(TrainingConfigError, match=r"(?s)speaker overlap.*\n.*duplicate audio between splits: "
                       r"train/test share 1 file \(a = b\); pass --allow-duplicate-audio to train anyway$"):
        check_split_hygiene(corpus)
    with pytest.raises(TrainingConfigError, match="^duplicate audio"):
        check_split_hygiene(corpus, allow_speaker_overlap=True)
    allowed = check_split_hygiene(corpus, allow_speaker_overlap=True, allow_duplicate_audio=True)
    assert allowed == find_split_overlap(corpus)
    assert allowed.message == ("speaker overlap between splits: train/test share 1 speaker (s1: 1 train, 1 test). "
                               "duplicate audio between splits: train/test share 1 file (a = b)")


def test_clean_splits_pass_with_no_message(tmp_path):
    paths = {"a": _write(tmp_path, "a.wav", b"a" * 10), "b": _write(tmp_path, "b.wav", b"b" * 10)}
    overlap = check_split_hygiene(_table([("a", "train", "s1"), ("b", "test", "s2")], paths))
    assert overlap.speakers == () and overlap.duplicates == () and overlap.message is None
