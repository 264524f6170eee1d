"""Tests of core.data.manifest: the utterance table, its readers and its validation (tiny corpora in tmp_path)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from core.config import AVD, LabelConfig
from core.data.corpus_formats import load_corpus, load_folder, load_manifest, load_msp_podcast
from core.data.manifest import (COLUMNS, SPLIT_ALIASES, SPLITS, ManifestError, corpus_fingerprint, is_labelled,
                                validate_manifest)

SR = 16_000


def write_wav(path: Path, seconds: float = 0.5, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), SR)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n")
    return path


def generic_corpus(root: Path) -> Path:
    """A CSV with relative, nested and absolute paths, every split spelling style and an unlabelled row."""
    for name in ("a.wav", "sub/b.wav", "c.flac", "d.wav"):
        write_wav(root / name)
    outside = write_wav(root.parent / "elsewhere" / "e.wav")
    return write_csv(root / "manifest.csv", f"""
Path,Split,Arousal,Valence,Dominance,Speaker,Emotion
a.wav,Training,3.5,4,2,spk1,H
./sub/b.wav,validation,1,7,,spk2,
c.flac,TEST1,2.25,3,5,,A
d.wav,,,,,,
{outside},test3,6,6,6,spk1,N
""")


def msp_corpus(root: Path, label_file: str = "labels_consensus.csv", audio_dir: str = "Audios",
               dev_name: str = "Development") -> Path:
    for name in ("MSP_0001.wav", "MSP_0002.wav", "MSP_0003.wav", "MSP_0004.wav", "MSP_0005.wav"):
        write_wav(root / audio_dir / name)
    write_csv(root / "Labels" / label_file, f"""
FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
MSP_0001.wav,H,4.2,5.0,4.4,127,Female,Train
MSP_0002.wav,N,3.0,4.0,3.2,Unknown,Male,{dev_name}
MSP_0003.wav,A,5.6,2.0,5.0,88,Male,Test1
MSP_0004.wav,X,2.0,3.8,2.6,12,Female,Test2
MSP_0005.wav,S,1.4,2.2,1.8,13,Male,Test3
""")
    return root


def folder_corpus(root: Path) -> Path:
    for name in ("z.wav", "a/b.FLAC", "a/c.ogg", ".hidden/x.wav", "notes.txt"):
        write_wav(root / name) if name.lower().endswith((".wav", ".flac", ".ogg")) else write_csv(root / name, "x")
    return root


def error_text(excinfo) -> str:
    return str(excinfo.value)


# ---- schema helpers ----

def assert_schema(df: pd.DataFrame) -> None:
    assert df.index.name == "file"
    assert df.index.is_unique
    assert tuple(df.columns) == COLUMNS
    for a in AVD:
        assert df[a].dtype == np.float64
    for c in ("path", "split"):
        assert pd.api.types.is_string_dtype(df[c].dtype)
        assert df[c].notna().all()
    assert set(df["split"]) <= set(SPLITS)
    assert all(os.path.isabs(p) for p in df["path"])


def test_split_aliases_cover_every_split_and_are_lowercase():
    assert set(SPLIT_ALIASES.values()) == set(SPLITS)
    assert all(k == k.lower() for k in SPLIT_ALIASES)
    assert SPLIT_ALIASES["validation"] == "dev" and SPLIT_ALIASES["test1"] == "test" and SPLIT_ALIASES[""] == "unlabelled"


# ---- load_manifest ----

def test_load_manifest_reads_valid_csv(tmp_path):
    root = tmp_path / "corpus"
    df = load_manifest(generic_corpus(root))
    assert_schema(df)
    outside = (tmp_path / "elsewhere" / "e.wav").as_posix()
    assert list(df.index) == ["a.wav", "sub/b.wav", "c.flac", "d.wav", outside]
    assert list(df["split"]) == ["train", "dev", "test", "unlabelled", "test3"]
    assert df.loc["sub/b.wav", "path"] == str(root / "sub" / "b.wav")
    assert df.loc[outside, "path"] == str(tmp_path / "elsewhere" / "e.wav")
    assert df.loc["a.wav", ["arousal", "valence", "dominance"]].tolist() == [3.5, 4.0, 2.0]
    assert np.isnan(df.loc["sub/b.wav", "dominance"])
    assert df.loc["a.wav", "speaker"] == "spk1" and pd.isna(df.loc["c.flac", "speaker"])
    assert df.loc["c.flac", "emotion"] == "A" and pd.isna(df.loc["sub/b.wav", "emotion"])
    assert is_labelled(df).tolist() == [True, True, True, False, True]


def test_load_manifest_accepts_subset_of_attribute_columns(tmp_path):
    write_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,valence\na.wav,dev,2.5\nb.wav,train,\n")
    df = load_manifest(csv)
    assert_schema(df)
    assert df["arousal"].isna().all() and df["dominance"].isna().all()
    assert df.loc["a.wav", "valence"] == 2.5
    assert df.loc["b.wav", "split"] == "unlabelled"  # no label at all -> unlabelled
    assert df["speaker"].isna().all() and df["emotion"].isna().all()


def test_load_manifest_without_split_or_labels_is_all_unlabelled(tmp_path):
    write_wav(tmp_path / "a.wav")
    df = load_manifest(write_csv(tmp_path / "m.csv", "PATH\na.wav\n"))
    assert df["split"].tolist() == ["unlabelled"]
    assert not is_labelled(df).any()


def test_load_manifest_respects_custom_label_range(tmp_path):
    write_wav(tmp_path / "a.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,arousal\na.wav,train,-0.5\n")
    assert load_manifest(csv, LabelConfig(minimum=-1.0, maximum=1.0)).loc["a.wav", "arousal"] == -0.5


def test_load_manifest_rejects_missing_path_column_listing_columns(tmp_path):
    csv = write_csv(tmp_path / "m.csv", "file,split,arousal\na.wav,train,3\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "'path'" in text and "['file', 'split', 'arousal']" in text and str(csv) in text


@pytest.mark.parametrize("content", ["", "path,split\n"])
def test_load_manifest_rejects_empty_csv(tmp_path, content):
    csv = tmp_path / "m.csv"
    csv.write_text(content)
    with pytest.raises(ManifestError, match="m.csv"):
        load_manifest(csv)


def test_load_manifest_rejects_nonexistent_file(tmp_path):
    with pytest.raises(ManifestError, match="found no file"):
        load_manifest(tmp_path / "absent.csv")


def test_load_manifest_rejects_unknown_split_listing_rows_and_accepted_names(tmp_path):
    for name in "abc":
        write_wav(tmp_path / f"{name}.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,arousal\na.wav,train,3\nb.wav,holdout,3\nc.wav,tst,4\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "line 3='holdout'" in text and "line 4='tst'" in text
    assert "'development'" in text and "'test2'" in text and str(csv) in text


def test_load_manifest_rejects_out_of_range_labels_listing_rows_and_values(tmp_path):
    for name in "abc":
        write_wav(tmp_path / f"{name}.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,arousal,valence\na.wav,train,0.5,4\nb.wav,dev,3,9\nc.wav,test,4,4\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "[1, 7]" in text and "line 2 arousal=0.5" in text and "line 3 valence=9" in text and "found 2" in text


def test_load_manifest_rejects_non_numeric_labels_listing_rows(tmp_path):
    for name in "abc":
        write_wav(tmp_path / f"{name}.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,arousal,dominance\na.wav,train,high,4\nb.wav,dev,3,NA\nc.wav,test,4,x\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "non-numeric" in text and "line 2 arousal='high'" in text and "line 4 dominance='x'" in text
    assert "line 3" not in text  # "NA" is an empty cell


def test_load_manifest_rejects_labels_without_split_column(tmp_path):
    write_wav(tmp_path / "a.wav")
    csv = write_csv(tmp_path / "m.csv", "path,arousal\na.wav,3\n")
    with pytest.raises(ManifestError, match="'split' column"):
        load_manifest(csv)


def test_load_manifest_rejects_labelled_rows_with_empty_or_unlabelled_split(tmp_path):
    for name in "abc":
        write_wav(tmp_path / f"{name}.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,arousal\na.wav,train,3\nb.wav,unlabeled,4\nc.wav,,5\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "found 2 labelled rows" in text and "line 3='unlabeled'" in text and "line 4=''" in text


def test_load_manifest_rejects_undecodable_csv(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_bytes(b"path\n\xff\xfe\n")
    with pytest.raises(ManifestError, match="readable CSV"):
        load_manifest(csv)


def test_load_manifest_rejects_duplicate_files(tmp_path):
    write_wav(tmp_path / "a.wav")
    csv = write_csv(tmp_path / "m.csv", "path,split,arousal\na.wav,train,3\n./a.wav,dev,4\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "duplicate files" in text and "line 2: a.wav" in text and "line 3: a.wav" in text


def test_load_manifest_lists_all_missing_audio_files(tmp_path):
    write_wav(tmp_path / "present.wav")
    names = [f"missing_{i:02d}.wav" for i in range(25)]
    csv = write_csv(tmp_path / "m.csv", "path\npresent.wav\n" + "\n".join(names))
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(csv)
    text = error_text(excinfo)
    assert "missing audio files" in text and "found 25" in text and str(csv) in text
    assert all(name in text for name in names[:20]) and "... and 5 more" in text
    assert "present.wav" not in text


# ---- load_msp_podcast ----

def test_load_msp_podcast_reads_release(tmp_path):
    root = msp_corpus(tmp_path / "msp")
    df = load_msp_podcast(root)
    assert_schema(df)
    assert list(df.index) == [f"MSP_000{i}.wav" for i in range(1, 6)]
    assert list(df["split"]) == ["train", "dev", "test", "test2", "test3"]
    assert df.loc["MSP_0001.wav", ["arousal", "valence", "dominance"]].tolist() == [4.2, 5.0, 4.4]
    assert df.loc["MSP_0001.wav", "path"] == str(root / "Audios" / "MSP_0001.wav")
    assert df.loc["MSP_0001.wav", "speaker"] == "127" and pd.isna(df.loc["MSP_0002.wav", "speaker"])
    assert df["emotion"].tolist() == ["H", "N", "A", "X", "S"]


def test_load_msp_podcast_accepts_older_names_and_validation_split(tmp_path):
    root = msp_corpus(tmp_path / "msp", label_file="labels_concensus.csv", audio_dir="Audio", dev_name="Validation")
    df = load_msp_podcast(root)
    assert df.loc["MSP_0002.wav", "split"] == "dev"
    assert df.loc["MSP_0002.wav", "path"] == str(root / "Audio" / "MSP_0002.wav")


def test_load_msp_podcast_rejects_missing_columns_listing_them(tmp_path):
    root = tmp_path / "msp"
    write_wav(root / "Audios" / "MSP_0001.wav")
    write_csv(root / "Labels" / "labels_consensus.csv", "FileName,EmoAct,SpkrID\nMSP_0001.wav,3,1\n")
    with pytest.raises(ManifestError) as excinfo:
        load_msp_podcast(root)
    text = error_text(excinfo)
    assert "missing ['Split_Set', 'EmoVal', 'EmoDom']" in text and "labels_consensus.csv" in text


def test_load_msp_podcast_rejects_missing_label_file(tmp_path):
    (tmp_path / "msp" / "Labels").mkdir(parents=True)
    (tmp_path / "msp" / "Audios").mkdir()
    with pytest.raises(ManifestError, match="labels_consensus.csv"):
        load_msp_podcast(tmp_path / "msp")


def test_load_msp_podcast_lists_missing_audio_and_out_of_range_labels(tmp_path):
    root = msp_corpus(tmp_path / "msp")
    (root / "Audios" / "MSP_0002.wav").unlink()
    (root / "Audios" / "MSP_0004.wav").unlink()
    with pytest.raises(ManifestError) as excinfo:
        load_msp_podcast(root)
    assert "MSP_0002.wav" in error_text(excinfo) and "MSP_0004.wav" in error_text(excinfo)
    root2 = msp_corpus(tmp_path / "msp2")
    labels = root2 / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text().replace("4.2,5.0,4.4", "8.0,5.0,4.4"))
    with pytest.raises(ManifestError, match="line 2 arousal=8"):
        load_msp_podcast(root2)


# ---- load_folder ----

def test_load_folder_lists_audio_recursively_sorted_and_unlabelled(tmp_path):
    root = folder_corpus(tmp_path / "audio")
    df = load_folder(root)
    assert_schema(df)
    assert list(df.index) == ["a/b.FLAC", "a/c.ogg", "z.wav"]
    assert (df["split"] == "unlabelled").all() and not is_labelled(df).any()
    assert df.loc["a/c.ogg", "path"] == str(root / "a" / "c.ogg")


def test_load_folder_rejects_empty_folder(tmp_path):
    write_csv(tmp_path / "empty" / "readme.txt", "nothing")
    with pytest.raises(ManifestError) as excinfo:
        load_folder(tmp_path / "empty")
    assert "no audio files (.wav, .flac" in error_text(excinfo) and str(tmp_path / "empty") in error_text(excinfo)


# ---- load_corpus ----

def test_load_corpus_dispatches_on_path_kind(tmp_path):
    csv = generic_corpus(tmp_path / "generic")
    assert load_corpus(csv).equals(load_manifest(csv))
    msp = msp_corpus(tmp_path / "msp")
    assert load_corpus(msp).equals(load_msp_podcast(msp))
    folder = folder_corpus(tmp_path / "folder")
    assert load_corpus(folder).equals(load_folder(folder))


def test_load_corpus_adds_prefixed_unlabelled_folder(tmp_path):
    msp = msp_corpus(tmp_path / "msp")
    extra = folder_corpus(tmp_path / "extra")
    write_wav(extra / "MSP_0001.wav")  # same name as a corpus file: the prefix keeps ids apart
    df = load_corpus(msp, unlabelled=extra)
    assert_schema(df)
    assert len(df) == 5 + 4
    assert "unlabelled/MSP_0001.wav" in df.index and "unlabelled/a/c.ogg" in df.index
    assert (df.loc[df.index.str.startswith("unlabelled/"), "split"] == "unlabelled").all()
    assert df.loc["unlabelled/z.wav", "path"] == str(extra / "z.wav")


def test_load_corpus_rejects_nonexistent_and_non_csv_paths(tmp_path):
    with pytest.raises(ManifestError, match="found nothing"):
        load_corpus(tmp_path / "nope")
    write_wav(tmp_path / "a.wav")
    with pytest.raises(ManifestError, match="expected a .csv manifest"):
        load_corpus(tmp_path / "a.wav")


# ---- validate_manifest ----

def valid_table(tmp_path) -> pd.DataFrame:
    return load_manifest(generic_corpus(tmp_path / "corpus"))


def test_validate_manifest_accepts_loaded_table(tmp_path):
    validate_manifest(valid_table(tmp_path))


def test_validate_manifest_rejects_wrong_index_name_and_columns(tmp_path):
    df = valid_table(tmp_path)
    with pytest.raises(ManifestError, match="named 'file'"):
        validate_manifest(df.rename_axis("id"))
    with pytest.raises(ManifestError, match="expected columns"):
        validate_manifest(df[["split", "path", *AVD, "speaker", "emotion"]])


def test_validate_manifest_rejects_wrong_dtypes(tmp_path):
    df = valid_table(tmp_path)
    df["arousal"] = df["arousal"].astype("float32")
    with pytest.raises(ManifestError, match=r"arousal \(float32\)"):
        validate_manifest(df)


def test_validate_manifest_rejects_duplicate_ids_and_unknown_splits(tmp_path):
    df = valid_table(tmp_path)
    with pytest.raises(ManifestError, match="duplicate file ids"):
        validate_manifest(pd.concat([df, df.iloc[:1]]))
    bad = df.copy()
    bad.loc["a.wav", "split"] = "training"
    with pytest.raises(ManifestError, match="a.wav='training'"):
        validate_manifest(bad)


def test_validate_manifest_rejects_out_of_range_labels(tmp_path):
    df = valid_table(tmp_path)
    df.loc["c.flac", "valence"] = 7.5
    with pytest.raises(ManifestError, match="c.flac valence=7.5"):
        validate_manifest(df)
    validate_manifest(df, LabelConfig(minimum=0.0, maximum=10.0))


def test_validate_manifest_enforces_unlabelled_rule_both_ways(tmp_path):
    df = valid_table(tmp_path)
    labelled_unlabelled = df.copy()
    labelled_unlabelled.loc["a.wav", "split"] = "unlabelled"
    with pytest.raises(ManifestError, match="labels but split 'unlabelled'"):
        validate_manifest(labelled_unlabelled)
    unlabelled_train = df.copy()
    unlabelled_train.loc["d.wav", "split"] = "train"
    with pytest.raises(ManifestError, match="without labels"):
        validate_manifest(unlabelled_train)


# ---- corpus_fingerprint ----

def test_corpus_fingerprint_is_stable_and_order_independent(tmp_path):
    csv = generic_corpus(tmp_path / "corpus")
    first = corpus_fingerprint(load_manifest(csv))
    assert len(first) == 64 and int(first, 16) >= 0
    assert corpus_fingerprint(load_manifest(csv)) == first
    assert corpus_fingerprint(load_manifest(csv).iloc[::-1]) == first


def test_corpus_fingerprint_changes_when_label_changes(tmp_path):
    csv = generic_corpus(tmp_path / "corpus")
    before = corpus_fingerprint(load_manifest(csv))
    csv.write_text(csv.read_text().replace("a.wav,Training,3.5", "a.wav,Training,3.6"))
    assert corpus_fingerprint(load_manifest(csv)) != before


def test_corpus_fingerprint_changes_when_audio_file_changes(tmp_path):
    csv = generic_corpus(tmp_path / "corpus")
    before = corpus_fingerprint(load_manifest(csv))
    audio = tmp_path / "corpus" / "a.wav"
    stat = audio.stat()
    write_wav(audio, seconds=0.5, freq=440.0)  # same size: only the mtime tells
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert audio.stat().st_size == stat.st_size
    assert corpus_fingerprint(load_manifest(csv)) != before


def test_corpus_fingerprint_rejects_missing_audio(tmp_path):
    df = valid_table(tmp_path)
    (tmp_path / "corpus" / "a.wav").unlink()
    with pytest.raises(ManifestError, match="a.wav"):
        corpus_fingerprint(df)
