import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from core.cli.main import main
from core.config import AudioConfig, ChunkConfig, FeatureConfig, ModelConfig, RunConfig
from core.data.extraction import extract_features
from core.model.bundle import ModelBundle, Normalisation, bundle_from_state, bundle_state, load_bundle
from core.model.network import EmotionCNN
from core.store import atomic, run_store
from core.store.analysis_store import load_latent, load_projection, save_latent, save_projection
from core.store.atomic import COMPLETE, CorruptFileError, atomic_torch_save, atomic_write_bytes
from core.store.feature_store import FeatureStore
from core.store.latent import LatentSpace
from core.store.run_info import RunInfo
from core.store.run_store import Checkpoint, RunNotFoundError, RunStore
from tests.helpers import corrupt


def _bundle():
    torch.manual_seed(0)
    nets = {"joint": EmotionCNN(ModelConfig(n_clusters=4)).eval()}
    norm = Normalisation(np.arange(128.0), np.ones(128), {"arousal": 4.0, "valence": 4.1, "dominance": 4.2},
                         {"arousal": 1.0, "valence": 0.9, "dominance": 0.8})
    return ModelBundle(nets, norm, RunConfig(name="t"))


def _info(run_id: str = "r1", kind: str = "test") -> RunInfo:
    return RunInfo(kind=kind, name="t", config=RunConfig(), run_id=run_id)


def test_bundle_round_trip_gives_identical_outputs(tmp_path):
    bundle = _bundle()
    atomic_torch_save(tmp_path / "model.pt", bundle_state(bundle))
    again = bundle_from_state(torch.load(tmp_path / "model.pt", weights_only=True))  # must not need pickled classes
    x = torch.randn(4, 1, 62, 128)
    with torch.no_grad():
        assert torch.equal(bundle.networks["joint"](x).attributes, again.networks["joint"](x).attributes)
    assert again.normalisation.label_std == bundle.normalisation.label_std and again.config == bundle.config


def test_atomic_write_bytes_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_run_store_lists_only_complete_runs(tmp_path):
    store = RunStore(tmp_path)
    run = store.save_complete(_info(), bundle_state(_bundle()))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text(json.dumps({"run_id": "half"}))
    assert [r.run_id for r in store.list()] == ["r1"] and store.latest().run_id == "r1"
    assert run.config == RunConfig()
    with pytest.raises(RunNotFoundError, match="no completed run 'half'.*available: \\['r1'\\]"):
        store.load("half")


def test_run_store_empty_latest_says_how_to_start(tmp_path):
    with pytest.raises(RunNotFoundError, match="import-official"):
        RunStore(tmp_path / "none").latest()


# --- checksums: a file corrupted on purpose is rebuilt or reported, never used silently ----------

FEATURES = (AudioConfig(), FeatureConfig(), ChunkConfig())


def _extract(clips, root):
    """Extract `clips` into the feature store under `root`: (store, a copy of the packed frames, stats)."""
    table = pd.DataFrame({"path": [str(p) for p in clips]}, index=pd.Index([p.name for p in clips], name="file"))
    store = FeatureStore(root, *FEATURES)
    result = extract_features(table, store, *FEATURES, workers=1)
    feats, stats = result.features, result.stats
    return store, np.array(feats.frames), stats


def test_file_digest_is_the_sha256_and_size_written(tmp_path):
    atomic_write_bytes(tmp_path / "x.bin", b"abc")
    remembered = atomic.file_digest(tmp_path / "x.bin")
    atomic._digests.clear()
    assert atomic.file_digest(tmp_path / "x.bin") == remembered == {
        "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}


def test_digests_adopted_from_another_process_hold_only_for_the_state_it_hashed(tmp_path):
    """A torchrun job hashes each file once (`core.data.extraction`): digests handed over by another rank are
    trusted while the file is the one it read, and never once the file has changed since."""
    for name in ("a.bin", "b.bin"):
        atomic_write_bytes(tmp_path / name, name.encode() * 100)
    handed = atomic.file_digests([tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "gone.bin"])
    assert set(handed) == {str(tmp_path / "a.bin"), str(tmp_path / "b.bin")}
    atomic._digests.clear()  # this process: nothing hashed yet
    with open(tmp_path / "b.bin", "r+b") as fh:  # b changes after the other rank hashed it, size kept
        fh.write(b"X")
    atomic.adopt_digests(handed)
    assert set(atomic.known_digests()) == {str(tmp_path / "a.bin")}
    atomic.verify_file(tmp_path / "a.bin", handed[str(tmp_path / "a.bin")][1])
    with pytest.raises(CorruptFileError, match="changed since it was written"):
        atomic.verify_file(tmp_path / "b.bin", handed[str(tmp_path / "b.bin")][1])


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_feature_shard_is_extracted_again(speechlike_clips, tmp_path, how):
    store, reference, _ = _extract(speechlike_clips, tmp_path)
    (shard,) = store.dir.glob("shard-*.npy")
    (pack,) = store.dir.glob("packs/*.npy")
    corrupt(shard, how)
    corrupt(pack, "flip")  # so the pack is rebuilt from the re-extracted shard
    with pytest.warns(UserWarning) as caught:
        _, frames, stats = _extract(speechlike_clips, tmp_path)
    messages = [str(w.message) for w in caught]
    assert any(f"{shard.name}: " in m and "discarding this feature shard" in m for m in messages), messages
    assert any(f"{pack.name}: " in m and "rebuilding this feature pack" in m for m in messages), messages
    assert stats.n_extracted == 5 and not shard.exists()
    np.testing.assert_array_equal(frames, reference)  # bit-identical


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_feature_pack_is_rebuilt_from_the_shards(speechlike_clips, tmp_path, how):
    store, reference, _ = _extract(speechlike_clips, tmp_path)
    (pack,) = store.dir.glob("packs/*.npy")
    corrupt(pack, how)
    with pytest.warns(UserWarning, match=f"{pack.name}.*rebuilding this feature pack from the shards"):
        _, frames, stats = _extract(speechlike_clips, tmp_path)
    assert stats.n_extracted == 0
    np.testing.assert_array_equal(frames, reference)


def test_edited_shard_index_is_detected(speechlike_clips, tmp_path):
    store, reference, _ = _extract(speechlike_clips, tmp_path)
    (index,) = store.dir.glob("shard-*.json")
    marker = json.loads(index.read_text())
    marker["entries"][1][1] += 1  # an offset off by one frame: the features of another clip
    index.write_text(json.dumps(marker))
    for pack in store.dir.glob("packs/*"):
        pack.unlink()
    with pytest.warns(UserWarning, match=f"{index.name}.*own checksum"):
        _, frames, stats = _extract(speechlike_clips, tmp_path)
    assert stats.n_extracted == 5
    np.testing.assert_array_equal(frames, reference)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_model_of_a_finished_run_is_reported_naming_it(tmp_path, speechlike_clips, capsys, how):
    store = RunStore(tmp_path / "runs")
    store.save_complete(_info(), bundle_state(_bundle()))
    load_bundle(store.load("r1"))  # intact
    model = corrupt(tmp_path / "runs" / "r1" / "model.pt", how)
    with pytest.raises(CorruptFileError, match=r"model\.pt.*train it again") as err:
        load_bundle(store.load("r1"))
    assert err.value.path == model
    assert main(["--runs-dir", str(tmp_path / "runs"), "predict", str(speechlike_clips[1])]) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: {model}: ") and "Traceback" not in message


def test_corrupted_run_config_leaves_the_run_out_of_the_list(tmp_path):
    store = RunStore(tmp_path)
    for run_id in ("r1", "r2"):
        store.save_complete(_info(run_id), bundle_state(_bundle()))
    corrupt(tmp_path / "r1" / "config.json", "flip")
    with pytest.warns(UserWarning, match="leaving run r1 out: .*config.json"):
        assert [r.run_id for r in store.list()] == ["r2"]
    with pytest.raises(CorruptFileError, match="config.json"):
        store.load("r1")


def test_markers_written_before_checksums_are_trusted(tmp_path):
    store = RunStore(tmp_path)
    store.save_complete(_info(), bundle_state(_bundle()))
    (tmp_path / "r1" / COMPLETE).write_bytes(b"")  # the previous version's empty marker
    run = store.load("r1")
    assert run.checksums is None and load_bundle(run).config == RunConfig(name="t")
    save_projection(tmp_path, "k", np.ones((3, 2)), {"n_points": 3})
    (tmp_path / "projections" / "k.json").write_text(json.dumps({"n_points": 3}))
    np.testing.assert_array_equal(load_projection(tmp_path, "k"), np.ones((3, 2)))


def _checkpoint(epoch: int) -> Checkpoint:
    return Checkpoint(epoch=epoch, best_score=0.5, model={"weights": torch.arange(10_000.0)}, optimisers={"sgd": {}},
                      rng={"cpu": torch.get_rng_state()}, previous_pseudo=np.zeros(4, np.int64),
                      history=pd.DataFrame([{"epoch": e} for e in range(epoch)]),
                      assignments=np.zeros((epoch, 4), np.int16), last_centroids=np.zeros((3, 8), np.float32))


def _write_checkpoint(store: RunStore, epoch: int) -> None:
    with store.writer(_info(kind="trained")) as writer:
        writer.finish_epoch(_checkpoint(epoch), best=bundle_state(_bundle()))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_training_checkpoint_is_reported_with_the_way_out(tmp_path, how):
    store = RunStore(tmp_path)
    _write_checkpoint(store, 1)
    corrupt(tmp_path / "r1" / "checkpoints" / "last.pt", how)
    corrupt(tmp_path / "r1" / "checkpoints" / "best.pt", how)
    with store.writer(_info(kind="trained")) as writer:  # a later process resuming
        with pytest.raises(CorruptFileError, match=r"last\.pt: .*--force to start this run over"):
            writer.resume()
        with pytest.raises(CorruptFileError, match=r"best\.pt"):
            writer.load_best_state()
        writer.reset()  # what --force does: start over
        assert writer.resume() is None


@pytest.mark.parametrize("step", ["before the rename", "after the rename"])
def test_a_crash_while_writing_a_checkpoint_is_not_taken_for_corruption(tmp_path, monkeypatch, step):
    store = RunStore(tmp_path)
    _write_checkpoint(store, 1)
    journal_writes = []
    real_write_json, real_write = run_store.write_checked_json, run_store.write_with_digest

    def killed_write_json(path, obj):  # the journal's second step never happens
        journal_writes.append(path)
        if len(journal_writes) == 2:
            raise KeyboardInterrupt
        real_write_json(path, obj)

    def killed_write(path, data, digest):  # the new checkpoint never lands
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), store.writer(_info(kind="trained")) as writer:
        monkeypatch.setattr(run_store, "write_checked_json", killed_write_json)
        if step == "before the rename":
            monkeypatch.setattr(run_store, "write_with_digest", killed_write)
        writer.write_bytes("checkpoints/last.pt", atomic.torch_bytes({**_last_pt(writer), "epoch": 2}))
    monkeypatch.setattr(run_store, "write_checked_json", real_write_json)
    monkeypatch.setattr(run_store, "write_with_digest", real_write)
    atomic._digests.clear()
    with store.writer(_info(kind="trained")) as writer:
        assert writer.resume().epoch == (1 if step == "before the rename" else 2)


def _last_pt(writer) -> dict:
    return torch.load(writer.dir / "checkpoints" / "last.pt", weights_only=True)


def _latent(n: int = 4, n_chunks: int = 2) -> LatentSpace:
    rng = np.random.default_rng(0)
    files = pd.Index([f"u{i}.wav" for i in range(n)], name="file")
    chunk = {s: rng.standard_normal((n * n_chunks, 8)).astype(np.float16) for s in ("cluster", "latent")}
    return LatentSpace(files=files, n_chunks=n_chunks, chunk_embeddings=chunk,
                       embeddings={s: v.reshape(n, n_chunks, -1).mean(1).astype(np.float32) for s, v in chunk.items()},
                       chunk_cluster=np.arange(n * n_chunks) % 3, cluster=np.arange(n) % 3,
                       cluster_share=np.full((n, 3), 1 / 3, np.float32), centroids=np.eye(3, 8, dtype=np.float32),
                       centroid_source="training", predictions=pd.DataFrame({"arousal": np.arange(n, dtype=float)}, index=files))


def test_latent_space_round_trips_every_array(tmp_path):
    """Each field its own file: the chunks' clusters once shared a name with the cluster space's chunk embeddings."""
    import dataclasses
    latent = dataclasses.replace(_latent(), chunk_predictions=np.arange(8, dtype=np.float32)[:, None],
                                 chunk_start_frames=np.arange(8, dtype=np.int32))
    save_latent(tmp_path, latent)
    back = load_latent(tmp_path)
    for name in ("chunk_cluster", "cluster", "cluster_share", "centroids", "chunk_predictions", "chunk_start_frames"):
        np.testing.assert_array_equal(getattr(back, name), getattr(latent, name), err_msg=name)
    for space in ("cluster", "latent"):
        np.testing.assert_array_equal(back.chunk_embeddings[space], latent.chunk_embeddings[space])
        np.testing.assert_array_equal(back.embeddings[space], latent.embeddings[space])
    save_latent(tmp_path / "without", _latent())  # the optional arrays may be absent
    assert load_latent(tmp_path / "without").chunk_predictions is None


@pytest.mark.parametrize("name,how", [("chunk_cluster.npy", "flip"), ("predictions.parquet", "truncate"),
                                      ("latent.json", "flip"), (COMPLETE, "flip")])
def test_corrupted_latent_space_is_treated_as_absent(tmp_path, name, how):
    save_latent(tmp_path, _latent())
    assert load_latent(tmp_path) is not None
    corrupt(tmp_path / name, how)
    with pytest.warns(UserWarning, match=f"{name}.*computing this latent space again"):
        assert load_latent(tmp_path) is None
    assert not (tmp_path / COMPLETE).exists()


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupted_projection_is_treated_as_absent(tmp_path, how):
    coords = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    save_projection(tmp_path, "k", coords, {"n_points": 50})
    np.testing.assert_array_equal(load_projection(tmp_path, "k"), coords)
    corrupt(tmp_path / "projections" / "k.npy", how)
    with pytest.warns(UserWarning, match="k.npy.*fitting this projection again"):
        assert load_projection(tmp_path, "k") is None
    assert not list((tmp_path / "projections").iterdir())


def test_runs_stored_before_the_redesign_still_load(tmp_path):
    """A run written by the previous version (info as a plain JSON dict, the old official-import keys, an
    empty pre-checksum `COMPLETE`) loads, with its info typed (issue 10)."""
    folder = tmp_path / "official-old"
    folder.mkdir()
    info = {"schema_version": 1, "run_id": "official-old", "created": "2026-11-01T10:00:00+00:00", "kind": "official",
            "name": "official-old", "config": RunConfig().to_dict(), "primary_network": "arousal",
            "source": {"arousal": "a_Act.pth.tar"}, "attribution": "by the authors", "published_test_ccc": {"arousal": 0.67},
            "centroids": "none", "a_key_from_a_later_version": 1}
    (folder / "config.json").write_text(json.dumps(info))
    atomic_torch_save(folder / "model.pt", bundle_state(_bundle()))
    (folder / "metrics.json").write_text(json.dumps({"test_ccc": {"test": {"arousal": 0.5}}, "best_epoch": 3}))
    (folder / "history.jsonl").write_text('{"epoch": 0, "best": true}\n')
    (folder / COMPLETE).write_bytes(b"")
    run = RunStore(tmp_path).load("official-old")
    assert run.info.kind == "official" and run.info.source == {"arousal": "a_Act.pth.tar"} and not run.info.trained
    assert run.info.primary_network == "arousal" and run.config == RunConfig()
    assert run.metrics().best_epoch == 3 and run.metrics().test_ccc["test"]["arousal"] == 0.5
    assert list(run.history()["epoch"]) == [0] and run.corpus() is None and run.centroids() is None
    assert RunInfo.from_dict(run.info.to_dict()) == run.info  # round trip through config.json's form


def test_run_info_round_trips_through_its_dict():
    info = RunInfo(kind="trained", name="x", config=RunConfig(name="x"), run_id="x-1", corpus_fingerprint="f",
                   corpus_size={"train": 3})
    assert RunInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_interrupted_lists_trainings_with_a_finished_epoch_and_their_corpus(tmp_path):
    """What a restarted app resumes: a run with a checkpoint and no COMPLETE, with the corpus it trains on;
    not one stopped before its first epoch, nor a finished one."""
    store = RunStore(tmp_path)
    corpus = pd.DataFrame({"path": ["a.wav"], "split": ["train"]}, index=pd.Index(["a.wav"], name="file"))
    with store.writer(_info(kind="trained")) as writer:
        writer.save_corpus(corpus)
        assert store.interrupted() == []  # no epoch finished yet: nothing to resume
        writer.finish_epoch(_checkpoint(1), best=bundle_state(_bundle()))
    (info, stored), = store.interrupted()
    assert info.run_id == "r1" and info.kind == "trained"
    pd.testing.assert_frame_equal(stored, corpus)
    store.save_complete(_info(run_id="r2"), bundle_state(_bundle()), corpus)  # finished runs are never resumed
    assert [i.run_id for i, _ in store.interrupted()] == ["r1"]
    assert store.load("r2").corpus().index.tolist() == ["a.wav"]
