"""Full disks and read-only stores (issue 33): a training, an extraction, an export and the app's map cache each end
with one message naming the file, why and the room needed; nothing half-written is trusted later; the same command
finishes the work once there is room. A read-only runs folder is explored all the same.

Each case runs under `RefusingDisk`, a shim that makes the OS refuse the stores' writes (everywhere), and, where
this machine lets the test mount one, on a real small file system (tmpfs) that is filled up or remounted read-only.
"""
import builtins
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.config import RunConfig
from core.data import extraction
from core.data.corpus_formats import load_manifest
from core.store.atomic import StoreWriteError
from core.store.feature_store import FeatureStore
from tests.conftest import REPO
from tests.disks import as_root, fill

APP = str(REPO / "app" / "streamlit_app.py")


class RefusingDisk:
    """The OS refusing writes under `root` as a full disk (ENOSPC) or a read-only one (EROFS) does, where the stores
    write: `open` for writing in the store modules, and `os.mkdir`, `os.replace`, `os.rename`, `os.unlink` (EROFS).

    Writes go through until a file whose name holds `trigger` has been written `after` times; from then on every
    write under `root` is refused, until `free()`. A full disk takes half of a write's bytes before it refuses.
    """
    MODULES = ("core.store.atomic", "core.store.run_store", "core.store.edits_store")

    def __init__(self, root: Path, code: int = errno.ENOSPC, trigger: str = "", after: int = 0):
        self.root, self.code, self.trigger, self.after = os.path.abspath(root) + os.sep, code, trigger, after
        self.seen, self.refusing = 0, not trigger and not after  # neither: refusing from the start

    def install(self, monkeypatch) -> "RefusingDisk":
        for module in self.MODULES:
            monkeypatch.setattr(f"{module}.open", self._open, raising=False)
        if self.code != errno.ENOSPC:
            for name in ("mkdir", "replace", "rename", "unlink"):
                monkeypatch.setattr(os, name, self._refusing(getattr(os, name)))
        return self

    def free(self) -> None:
        """Room made (or the folder made writable): every write goes through again."""
        self.refusing, self.after = False, 1 << 30

    def _under(self, path) -> bool:
        return os.path.abspath(path).startswith(self.root)

    def _open(self, file, mode="r", *args, **kwargs):
        if set(mode) & set("wax+") and self._under(file):
            if not self.refusing and self.trigger in Path(file).name:
                self.refusing, self.seen = self.seen == self.after, self.seen + 1
            if self.refusing:
                if self.code == errno.ENOSPC:
                    return _HalfWritten(builtins.open(file, mode, *args, **kwargs))
                raise OSError(self.code, os.strerror(self.code), str(file))
        return builtins.open(file, mode, *args, **kwargs)

    def _refusing(self, real):
        def call(path, *args, **kwargs):
            if self.refusing and self._under(path):
                raise OSError(self.code, os.strerror(self.code), str(path))
            return real(path, *args, **kwargs)
        return call


class _HalfWritten:
    """A file on a disk that fills up: half of the first write lands, then ENOSPC."""

    def __init__(self, file):
        self._file = file

    def write(self, data) -> int:
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):  # fileno, flush, close: the real file's
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from core.data.synthetic import make_demo_corpus
    return make_demo_corpus(tmp_path_factory.mktemp("full-disk-corpus"), n_train=24, n_dev=8, n_test=8, n_unlabelled=16)


def _train_args(corpus: Path) -> list[str]:
    return ["train", "--corpus", str(corpus), "--preset", "tiny", "--set", "train.epochs=3"]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """A data folder with an uninterrupted tiny training (what each interrupted one must equal), explored and mapped."""
    from core.explore.exploration import explore, project
    from core.store.run_store import RunStore
    data = tmp_path_factory.mktemp("full-disk-reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_DATA_DIR", str(data))
        assert main(["--runs-dir", str(data / "runs"), *_train_args(corpus)]) == 0
    project(explore(RunStore(data / "runs").latest(), cache_root=data / "cache"))
    return data


def _history(runs: Path) -> list[dict]:
    (path,) = runs.glob("tiny-*/history.jsonl")
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]


def _error_line(err: str) -> str:
    """The one line a user is told (the CLI's stderr also holds the progress lines and bars around it)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _half_written(folder: Path) -> list[Path]:  # temporary files left behind
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


# --- (a) a training -------------------------------------------------------------------------------

def test_training_on_a_full_disk_says_so_and_resumes_once_there_is_room(corpus, reference, tmp_path, monkeypatch, capsys):
    """Epoch 2's checkpoint is refused half-written: one line naming it, exit 2; the same command then resumes after
    epoch 1 and ends as the uninterrupted run did."""
    monkeypatch.setenv("SER_DATA_DIR", str(reference))  # the features are extracted: the training is what is tested
    runs = tmp_path / "runs"
    disk = RefusingDisk(runs, trigger="last.pt", after=1).install(monkeypatch)
    assert main(["--runs-dir", str(runs), *_train_args(corpus)]) == 2
    line = _error_line(capsys.readouterr().err)
    (run,) = runs.glob("tiny-*")
    assert line.startswith(f"error: cannot write {run / 'checkpoints' / 'last.pt'}: the disk is full (")
    assert "to write" in line and "free" in line and "run the same command again" in line
    assert not (run / "COMPLETE").exists() and not _half_written(runs)
    disk.free()
    assert main(["--runs-dir", str(runs), *_train_args(corpus)]) == 0
    assert "resuming after epoch 1/3" in capsys.readouterr().err
    assert _history(runs) == _history(reference / "runs")


@pytest.mark.slow  # 6-9 s on 2 cores; the shim variant above runs the same path everywhere
def test_training_on_a_real_disk_that_fills_up_resumes_once_space_is_freed(corpus, reference, small_disk, monkeypatch,
                                                                           capsys):
    from core.cli.progress import TrainPrinter

    class FillingPrinter(TrainPrinter):  # the disk fills up once epoch 1 is saved
        def __call__(self, p):
            super().__call__(p)
            if p.stage == "validate" and p.epoch == 0 and not (small_disk / "filler").exists():
                fill(small_disk)
    monkeypatch.setattr("core.cli.main.TrainPrinter", FillingPrinter)
    monkeypatch.setenv("SER_DATA_DIR", str(reference))
    runs = small_disk / "runs"
    assert main(["--runs-dir", str(runs), *_train_args(corpus)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"error: cannot write {runs}" in line and "the disk is full (" in line and " free); nothing" in line
    assert not list(runs.glob("*/COMPLETE")) and not _half_written(runs)
    (small_disk / "filler").unlink()
    assert main(["--runs-dir", str(runs), *_train_args(corpus)]) == 0
    assert "resuming after epoch 1/3" in capsys.readouterr().err
    assert _history(runs) == _history(reference / "runs")


# --- (b) an extraction ----------------------------------------------------------------------------

def test_extraction_on_a_full_disk_keeps_its_shards_and_the_rerun_extracts_the_rest(corpus, tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.setattr(extraction, "SHARD_SECONDS", 0.0)  # a shard per batch of 16 files
    extract = ["extract", "--corpus", str(corpus), "--workers", "1"]
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "reference"))
    assert main(extract) == 0
    data = tmp_path / "data"
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    disk = RefusingDisk(data, trigger=".npy", after=1).install(monkeypatch)  # the second shard is refused
    assert main(extract) == 2
    line = _error_line(capsys.readouterr().err)
    assert "error: cannot write " in line and "/shard-" in line and "the disk is full" in line
    assert len(list(data.glob("cache/features/*/shard-*.json"))) == 1 and not _half_written(data)
    disk.free()
    assert main(extract) == 0
    assert "extracted 40 new files" in capsys.readouterr().out  # 56 files, 16 of them kept from the refused run
    (pack,), (reference,) = (folder.glob("cache/features/*/packs/*.npy") for folder in (data, tmp_path / "reference"))
    np.testing.assert_array_equal(np.load(pack), np.load(reference))


def _extract(corpus: Path, root: Path, progress=None) -> tuple[FeatureStore, extraction.Extraction]:
    """`extract_features` of the corpus (default settings, in this process) into a feature store under `root`."""
    cfg = RunConfig()
    store = FeatureStore(root, cfg.audio, cfg.features, cfg.chunks)
    return store, extraction.extract_features(load_manifest(corpus), store, cfg.audio, cfg.features, cfg.chunks,
                                              workers=1, progress=progress)


def test_extraction_on_a_real_disk_that_fills_up_extracts_the_rest_once_space_is_freed(corpus, small_disk, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setattr(extraction, "SHARD_SECONDS", 0.0)
    reference = _extract(corpus, tmp_path / "reference")[1]
    shards = lambda: list(small_disk.glob("features/*/shard-*.json"))  # noqa: E731

    def fill_after_the_first_shard(done, total):
        if shards() and not (small_disk / "filler").exists():
            fill(small_disk)
    with pytest.raises(StoreWriteError, match="the disk is full") as refused:
        _extract(corpus, small_disk, fill_after_the_first_shard)
    assert refused.value.errno == errno.ENOSPC and refused.value.path.is_relative_to(small_disk)
    assert len(shards()) == 1 and not _half_written(small_disk)
    (small_disk / "filler").unlink()
    rerun = _extract(corpus, small_disk)[1]
    assert rerun.stats.n_extracted == len(reference.features.files) - 16
    np.testing.assert_array_equal(rerun.features.frames, reference.features.frames)


def test_a_feature_pack_on_a_nearly_full_real_disk_is_refused_with_a_message(corpus, small_disk):
    """The pack is written through a memory map: without its room reserved first, a full disk would kill the process
    with SIGBUS, without a word."""
    store, extracted = _extract(corpus, small_disk)
    files, frames = extracted.features.files, np.array(extracted.features.frames)
    keys = [store.file_key(p) for p in load_manifest(corpus).loc[files, "path"]]
    pack = store.pack_path(keys)
    del extracted
    pack.unlink()
    pack.with_suffix(".json").unlink()
    filler = fill(small_disk, leave=256 * 1024)  # room for the header, not for the frames (4.8 MB)
    with pytest.raises(StoreWriteError, match=f"cannot write {pack}: the disk is full"):
        store.pack(files, keys)
    assert not _half_written(small_disk) and not pack.exists()
    filler.unlink()
    np.testing.assert_array_equal(store.pack(files, keys).frames, frames)


# --- (c) an export --------------------------------------------------------------------------------

def test_an_export_to_a_full_disk_names_the_file_and_the_rerun_writes_every_table(reference, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.setenv("SER_DATA_DIR", str(reference))
    out = tmp_path / "out"
    disk = RefusingDisk(out, after=1).install(monkeypatch)  # the first table lands, the second is refused
    export = ["--runs-dir", str(reference / "runs"), "export", "--out", str(out)]
    assert main(export) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out / 'dependence.csv'}: the disk is full")
    assert [p.name for p in out.iterdir()] == ["cluster_emotion.csv"]  # whole, and nothing half-written beside it
    disk.free()
    assert main(export) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cluster_emotion.csv", "contingency.csv", "dependence.csv",
                                                     "embeddings.csv", "utterances.csv"]


def test_export_corpus_to_a_read_only_folder_names_the_file(reference, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SER_DATA_DIR", str(reference))
    out = tmp_path / "out"
    out.mkdir()
    RefusingDisk(out, errno.EROFS).install(monkeypatch)
    assert main(["--runs-dir", str(reference / "runs"), "export-corpus", "--out", str(out / "corrected.csv")]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out / 'corrected.csv'}: the folder is read-only")
    assert f"make {out} writable" in line and not list(out.iterdir())


# --- a read-only runs folder on the command line ---------------------------------------------------

def test_training_into_a_read_only_runs_folder_says_so_in_one_line(corpus, reference, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SER_DATA_DIR", str(reference))
    runs = tmp_path / "runs"
    runs.mkdir()
    RefusingDisk(runs, errno.EROFS).install(monkeypatch)
    assert main(["--runs-dir", str(runs), *_train_args(corpus)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {runs}/tiny-") and "the folder is read-only" in line
    assert not list(runs.iterdir())


def test_an_export_from_a_read_only_runs_folder_is_written_and_says_what_was_not_cached(reference, tmp_path,
                                                                                       monkeypatch):
    from core.explore.exploration import CacheNotSavedWarning
    monkeypatch.setenv("SER_DATA_DIR", str(reference))
    runs = tmp_path / "runs"
    _uncached_copy(reference, runs)
    RefusingDisk(runs, errno.EROFS).install(monkeypatch)
    with pytest.warns(CacheNotSavedWarning, match="is used from memory.*the folder is read-only") as said:
        assert main(["--runs-dir", str(runs), "export", "--out", str(tmp_path / "out")]) == 0
    assert {str(w.message).split(" is used")[0] for w in said} == {"The latent space", "The map"}
    assert len(list((tmp_path / "out").iterdir())) == 5 and not list(runs.glob("*/analysis/*/COMPLETE"))


# --- (d) the app's map cache, and a read-only runs folder in the app ----------------------------------

def _uncached_copy(reference: Path, runs: Path) -> None:
    """The reference run without its analyses: opening it computes its latent space and map, which must be cached."""
    shutil.copytree(reference / "runs", runs, ignore=shutil.ignore_patterns("analysis"))


def _open_map_and_tag(monkeypatch, data: Path, runs: Path) -> AppTest:
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    monkeypatch.setenv("SER_RUNS_DIR", str(runs))
    st.cache_resource.clear()  # the same run id is cached by other tests, from a writable folder
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.title[0].value == "Latent map"
    assert any("utterances in the clustering space" in c.value for c in at.caption)  # the map is drawn
    at.run()  # a rerun takes the latent space and map from memory: the warnings are shown again
    at.radio(key="latent.tag_target").set_value("a cluster").run()
    at.text_input(key="latent.tag_text").input("laughter").run()
    at.button(key="latent.tag_add").click().run()
    assert not at.exception, at.exception
    st.cache_resource.clear()
    st.cache_data.clear()
    return at


def _assert_explored_with_warnings(at: AppTest, runs: Path, reason: str) -> None:
    warnings = [w.value for w in at.warning]
    for what in ("The latent space", "The map"):  # each said once, above the page
        said = [w for w in warnings if w.startswith(f"{what} is used from memory")]
        assert len(said) == 1 and f"{runs}/" in said[0] and reason in said[0], warnings
    (error,) = [e.value for e in at.error]  # the tag could not be saved: said, the map still there
    assert "the edits could not be saved" in error and reason in error and "the log on disk is unchanged" in error
    assert at.title[0].value == "Latent map"


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the folder is read-only")])
def test_the_app_explores_a_full_or_read_only_runs_folder_and_says_what_was_not_saved(reference, tmp_path, monkeypatch,
                                                                                       code, reason):
    runs = tmp_path / "runs"
    _uncached_copy(reference, runs)
    RefusingDisk(runs, code).install(monkeypatch)
    at = _open_map_and_tag(monkeypatch, reference, runs)
    _assert_explored_with_warnings(at, runs, reason)
    assert not list(runs.glob("corpora/*/edits.json")) and not _half_written(runs)


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_the_app_explores_a_real_full_or_read_only_disk(reference, small_disk, monkeypatch, how):
    runs = small_disk / "runs"
    _uncached_copy(reference, runs)
    if how == "full":
        fill(small_disk)
    else:
        as_root("mount", "-o", "remount,ro", str(small_disk))
    at = _open_map_and_tag(monkeypatch, reference, runs)
    _assert_explored_with_warnings(at, runs, "the disk is full" if how == "full" else "the folder is read-only")
    assert not _half_written(runs)
