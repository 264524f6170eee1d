"""The training loop end to end on a tiny generated corpus: stages, determinism, resume, cache, errors."""
import contextlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from core.config import apply_overrides, tiny
from core.data.corpus_formats import load_manifest
from core.model.bundle import load_bundle
from core.runtime.distributed import World
from core.store.atomic import CorruptFileError
from core.store.run_store import RunLockedError, RunStore
from core.training.keeping import kept_epoch
from core.training.train import (TrainingConfigError, _embed, _Epoch, _fit_clusters, _kmeans, _new_model, _optimisers, run_id_for,
                                 run_info, train)
from core.training.training_data import prepare_training_data
from tests.helpers import corrupt


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> pd.DataFrame:
    from core.data.synthetic import make_demo_corpus
    root = tmp_path_factory.mktemp("tiny-corpus")
    return load_manifest(make_demo_corpus(root, n_train=8, n_dev=4, n_test=4, n_unlabelled=8))


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def trained_run(tiny_corpus, cache, tmp_path_factory):
    return train(tiny(), tiny_corpus, RunStore(tmp_path_factory.mktemp("runs")), cache)


def _deterministic(cfg):
    return apply_overrides(cfg, ["train.epochs=3"])


def test_train_tiny_end_to_end_writes_a_complete_run(trained_run):
    run = trained_run.run
    assert trained_run.trained and (run.dir / "COMPLETE").exists()
    for name in ["config.json", "model.pt", "checkpoints/last.pt", "checkpoints/best.pt", "history.jsonl", "metrics.json"]:
        assert (run.dir / name).is_file(), name
    assert np.load(run.dir / "assignments.npy").shape == (2, 8 * 2)  # epochs x train chunks
    assert np.load(run.dir / "centroids.npy").shape == (3, 16)  # K x cluster-branch width
    assert set(trained_run.test_ccc["test"]) == {"arousal", "valence", "dominance"}
    history = trained_run.history
    assert list(history["epoch"]) == [0, 1] and history["cluster_loss"].notna().all()
    assert set(history.loc[0, "dev_ccc"]) == {"arousal", "valence", "dominance"}
    assert list(history["precision"]) == ["fp32", "fp32"]
    torch.load(run.dir / "checkpoints" / "last.pt", weights_only=True)
    bundle = load_bundle(run)
    assert set(bundle.normalisation.label_mean) == {"arousal", "valence", "dominance"}


@pytest.mark.parametrize("native", [True, False])
def test_each_epoch_records_the_precision_auto_resolved_to(monkeypatch, native, tiny_corpus, cache, tmp_path):
    import core.model.network
    monkeypatch.setattr(core.model.network, "_native_bf16", lambda device_type, index: native)
    result = train(apply_overrides(tiny(), ["train.precision=auto", "train.epochs=1"]), tiny_corpus,
                   RunStore(tmp_path), cache)
    assert list(result.run.history()["precision"]) == ["bf16" if native else "fp32"]


def test_train_existing_run_is_loaded_not_retrained(trained_run, tiny_corpus, cache):
    model_file = trained_run.run.dir / "model.pt"
    before = model_file.stat().st_mtime_ns
    again = train(tiny(), tiny_corpus, RunStore(trained_run.run.dir.parent), cache)
    assert not again.trained and again.run.run_id == trained_run.run.run_id
    assert model_file.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.history, trained_run.history)


def test_unlabelled_stage_updates_encoder_and_cluster_branch_not_regressor(tiny_corpus, cache):
    cfg = tiny()
    data = prepare_training_data(cfg, tiny_corpus, cache, 1)
    torch.manual_seed(0)
    model = _new_model(cfg).to(memory_format=torch.channels_last)
    ep = _Epoch(0, model, _optimisers(model, cfg), data.normaliser, cfg, np.random.default_rng(0), lambda p: None, World())
    pseudo = _kmeans(ep, _embed(ep, data.unlabelled, "embed unlabelled"), seed=0)
    model.reset_cluster_head(cfg.model.n_clusters)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _fit_clusters(ep, data.unlabelled, pseudo.labels_)
    after = model.state_dict()
    assert not torch.equal(before["encoder.0.weight"], after["encoder.0.weight"])
    assert not torch.equal(before["cluster_hidden.weight"], after["cluster_hidden.weight"])
    for key in ["regressor.0.weight", "regressor.0.bias", "regressor.2.weight", "regressor.2.bias"]:
        assert torch.equal(before[key], after[key]), key


def test_each_epoch_reports_the_space_its_labelled_k_means_clustered(tiny_corpus, cache, tmp_path):
    """`TrainProgress.space` (a live map's data): every labelled training utterance, its label the majority of
    the chunk pseudo-labels the run stores for that epoch, reported before the joint stage trains on them."""
    from core.store.latent import cluster_shares
    seen = []
    result = train(tiny(), tiny_corpus, RunStore(tmp_path / "runs"), cache, progress=seen.append)
    spaces = [p.space for p in seen if p.space is not None]
    assert [s.epoch for s in spaces] == [0, 1] and {p.stage for p in seen if p.space is not None} == {"clustered"}
    first_joint = next(i for i, p in enumerate(seen) if p.stage == "train joint")
    assert seen[first_joint - 1].space is spaces[0]  # reported before the joint stage trains on its labels
    assignments = np.load(result.run.dir / "assignments.npy")
    train_files = tiny_corpus.index[tiny_corpus["split"] == "train"]
    for space, chunk_labels in zip(spaces, assignments):
        assert sorted(space.files) == sorted(train_files) and space.n_utterances == len(train_files)
        assert space.embeddings.shape == (len(train_files), tiny().model.hidden_dim)
        assert space.cluster.tolist() == cluster_shares(chunk_labels, 2, 3).argmax(1).tolist()


def test_without_a_watcher_no_epoch_space_is_built(tiny_corpus, cache, tmp_path, monkeypatch):
    """The live map's data is made for a `progress` callback only: a run without one (the CLI's ranks other
    than 0) skips it."""
    import core.training.train
    built = []
    monkeypatch.setattr(core.training.train, "epoch_space", lambda *a, **k: built.append(a))
    train(apply_overrides(tiny(), ["train.epochs=1"]), tiny_corpus, RunStore(tmp_path), cache)
    assert built == []


def test_pseudo_labels_change_between_epochs(trained_run):
    assignments = np.load(trained_run.run.dir / "assignments.npy")
    assert not np.array_equal(assignments[0], assignments[1])
    assert trained_run.history["nmi_previous"].iloc[1] <= 1.0


def test_freeze_regressor_keeps_its_initial_weights(tiny_corpus, cache, tmp_path):
    cfg = apply_overrides(tiny(), ["train.freeze_regressor=true", "train.epochs=1"])
    result = train(cfg, tiny_corpus, RunStore(tmp_path), cache)
    regressor = next(iter(load_bundle(result.run).networks.values())).regressor
    assert regressor[0].bias.abs().max() == 0 and regressor[2].bias.abs().max() == 0  # zero init, never stepped
    assert regressor[0].weight.std().item() == pytest.approx(0.01, rel=0.2)


def test_bf16_training_is_a_run_of_its_own_with_a_float32_bundle(trained_run, tiny_corpus, cache, tmp_path):
    cfg = apply_overrides(tiny(), ["train.precision=bf16"])
    result = train(cfg, tiny_corpus, RunStore(tmp_path), cache)
    assert result.run.run_id != trained_run.run.run_id and result.run.config.train.precision == "bf16"
    history = result.history
    assert len(history) == cfg.train.epochs and np.isfinite(history[["cluster_loss", "joint_ce", "joint_ccc_loss"]]).all().all()
    network = next(iter(load_bundle(result.run).networks.values()))
    assert all(p.dtype == torch.float32 for p in network.parameters())
    assert all(np.isfinite(v) for split in result.test_ccc.values() for v in split.values())
    # bf16 takes effect (the losses are not the fp32 run's bits) and differs by rounding only
    fp32 = trained_run.history
    assert not np.array_equal(history["joint_ce"], fp32["joint_ce"])
    assert np.allclose(history[["cluster_loss", "joint_ce"]], fp32[["cluster_loss", "joint_ce"]], atol=0.01)


def test_same_seed_gives_identical_metrics_and_resume_equals_uninterrupted(tiny_corpus, cache, tmp_path):
    torch.use_deterministic_algorithms(True)
    try:
        cfg = _deterministic(tiny())
        first = train(cfg, tiny_corpus, RunStore(tmp_path / "a"), cache)
        second = train(cfg, tiny_corpus, RunStore(tmp_path / "b"), cache)
        pd.testing.assert_frame_equal(first.history.drop(columns="seconds"), second.history.drop(columns="seconds"))
        assert np.array_equal(np.load(first.run.dir / "assignments.npy"), np.load(second.run.dir / "assignments.npy"))

        def interrupt(progress):  # a Ctrl-C in the middle of the second epoch's joint stage
            if progress.epoch == 1 and progress.stage == "train joint" and progress.done == 1:
                raise KeyboardInterrupt
        store = RunStore(tmp_path / "c")
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tiny_corpus, store, cache, progress=interrupt)
        history = store.root / run_id_for(cfg, tiny_corpus) / "history.jsonl"
        assert store.list() == [] and len(history.read_text().splitlines()) == 1  # epoch 0 saved, epoch 1 lost
        resumed = train(cfg, tiny_corpus, store, cache)
        assert resumed.trained
        pd.testing.assert_frame_equal(first.history.drop(columns="seconds"), resumed.history.drop(columns="seconds"))
        assert first.test_ccc == resumed.test_ccc
    finally:
        torch.use_deterministic_algorithms(False)


def test_resume_from_a_corrupted_checkpoint_is_refused_until_forced(tiny_corpus, cache, tmp_path):
    def interrupt(progress):  # a Ctrl-C in the second epoch: the first epoch's checkpoint is on disk
        if progress.epoch == 1 and progress.stage == "train joint":
            raise KeyboardInterrupt
    store = RunStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(), tiny_corpus, store, cache, progress=interrupt)
    corrupt(store.root / run_id_for(tiny(), tiny_corpus) / "checkpoints" / "last.pt", "flip")
    with pytest.raises(CorruptFileError, match=r"last\.pt: .*again with --force to start this run over"):
        train(tiny(), tiny_corpus, store, cache)
    result = train(tiny(), tiny_corpus, store, cache, force=True)
    assert result.trained and list(result.history["epoch"]) == [0, 1]


def test_second_process_cannot_train_a_locked_run(tiny_corpus, cache, tmp_path):
    cfg, store = tiny(), RunStore(tmp_path)
    with store.writer(run_info(cfg, tiny_corpus)):
        with pytest.raises(RunLockedError, match="being trained by another process"):
            train(cfg, tiny_corpus, store, cache)


@pytest.mark.parametrize("change,message", [
    (lambda t: t.assign(split=t["split"].replace({"train": "test"})), "no labelled 'train' split"),
    (lambda t: t.assign(split=t["split"].replace({"dev": "test"})), "no 'dev' split"),
    (lambda t: t[t["split"] != "unlabelled"], "no unlabelled clips"),
    (lambda t: t.assign(valence=t["valence"].where(t["split"] != "train")), "8 train clips lack a label"),
])
def test_bad_corpus_fails_before_any_work(tiny_corpus, cache, tmp_path, change, message):
    with pytest.raises(TrainingConfigError, match=message):
        train(tiny(), change(tiny_corpus), RunStore(tmp_path), cache)
    assert not any(tmp_path.iterdir())


def test_too_many_clusters_fails_before_any_work(tiny_corpus, cache, tmp_path):
    with pytest.raises(TrainingConfigError, match="n_clusters=20 needs more labelled train chunks than clusters, found 16"):
        train(apply_overrides(tiny(), ["model.n_clusters=20"]), tiny_corpus, RunStore(tmp_path), cache)


def test_cli_train_then_cached_then_evaluate(tiny_corpus, tmp_path, monkeypatch, capsys):
    from core.cli.main import main
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "data"))
    manifest = str(tiny_corpus["path"].iloc[0]).rsplit("/audio/", 1)[0] + "/manifest.csv"
    args = ["--runs-dir", str(tmp_path / "runs"), "train", "--corpus", manifest, "--preset", "tiny", "--set", "train.epochs=1"]
    assert main(args) == 0
    assert "trained tiny-" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "loaded existing run" in out and "arousal" in out
    assert main(["--runs-dir", str(tmp_path / "runs"), "evaluate"]) == 0
    assert "test" in capsys.readouterr().out
    assert main([*args[:-2], "--set", "train.epochz=1"]) == 2
    assert "unknown config key 'train.epochz'" in capsys.readouterr().err


def test_stored_centroids_are_k_means_in_the_kept_models_space(trained_run, tiny_corpus, cache):
    """SPEC 2.4 (issue 10): `centroids.npy` comes from one seeded K-means over the training chunks in the
    saved model's clustering space, after training, so map clusters and the saved network agree."""
    from core.model.clustering import nearest_centroid
    from core.training.train import _FINAL_SEED_OFFSET, _labeler
    from core.model.forward import embed_chunks
    cfg, run = tiny(), trained_run.run
    data = prepare_training_data(cfg, tiny_corpus, cache, 1)
    (network,) = load_bundle(run).networks.values()
    vectors = embed_chunks(network.to(memory_format=torch.channels_last), data.train, data.normaliser).cluster_features
    stored = run.centroids()
    expected = _labeler(cfg, cfg.seed + _FINAL_SEED_OFFSET).fit(vectors)
    np.testing.assert_allclose(stored, expected.cluster_centers_, atol=1e-5)
    assert np.array_equal(nearest_centroid(vectors, stored), expected.labels_)  # the saved model's own grouping
    assert np.load(run.dir / "last_centroids.npy").shape == stored.shape  # the final epoch's, kept beside them


def _leaking(corpus: pd.DataFrame) -> pd.DataFrame:
    """`corpus` with its first test clip spoken by its first train speaker."""
    speaker = corpus.loc[corpus["split"] == "train", "speaker"].iloc[0]
    return corpus.assign(speaker=corpus["speaker"].mask(corpus.index == corpus.index[corpus["split"] == "test"][0],
                                                        speaker))


def test_speaker_overlap_is_refused_before_any_work_unless_allowed_and_then_recorded(tiny_corpus, cache, tmp_path):
    corpus, cfg = _leaking(tiny_corpus), apply_overrides(tiny(), ["train.epochs=1"])
    with pytest.raises(TrainingConfigError, match=r"^speaker overlap between splits: train/test share 1 speaker .*"
                                                  r"pass --allow-speaker-overlap to train anyway$"):
        train(cfg, corpus, RunStore(tmp_path), tmp_path / "no-cache")
    assert not any(tmp_path.iterdir())  # no run, no features
    result = train(cfg, corpus, RunStore(tmp_path), cache, allow_speaker_overlap=True)
    assert result.trained and result.run.run_id == run_id_for(cfg, corpus)  # the flag is not part of the run's identity
    stored = RunStore(tmp_path).load(result.run.run_id).info
    assert stored.split_overlap.startswith("speaker overlap between splits: train/test share 1 speaker")
    assert train(cfg, tiny_corpus, RunStore(tmp_path / "clean"), cache).run.info.split_overlap is None


def test_cli_train_refuses_a_leaking_corpus_unless_allowed(tiny_corpus, tmp_path, monkeypatch, capsys):
    from core.cli.main import main
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "data"))
    manifest = tmp_path / "manifest.csv"
    _leaking(tiny_corpus).reset_index(drop=True)[["path", "split", "arousal", "valence", "dominance", "speaker",
                                                  "emotion"]].to_csv(manifest, index=False)
    args = ["--runs-dir", str(tmp_path / "runs"), "train", "--corpus", str(manifest), "--preset", "tiny",
            "--set", "train.epochs=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: speaker overlap between splits: train/test share 1 speaker") and err.count("\n") == 1
    assert main([*args, "--allow-speaker-overlap"]) == 0
    assert "trained tiny-" in capsys.readouterr().out
    (run,) = RunStore(tmp_path / "runs").list()
    assert "train/test share 1 speaker" in run.info.split_overlap


def test_training_with_every_recipe_option_on_gives_a_run_of_its_own(trained_run, tiny_corpus, cache, tmp_path):
    cfg = apply_overrides(tiny(), ["train.lr_schedule=cosine", "train.joint_ce_weight=0.5",
                                   "train.time_mask_frames=10", "train.freq_mask_bins=20"])
    result = train(cfg, tiny_corpus, RunStore(tmp_path), cache)
    assert result.run.run_id != trained_run.run.run_id
    assert np.isfinite(result.history[["cluster_loss", "joint_ce", "joint_ccc_loss"]]).all().all()
    assert not result.history["joint_ccc_loss"].equals(trained_run.history["joint_ccc_loss"])


def _rules_disagree(rule: str):
    """`tiny` for 3 epochs on `tiny_corpus`, where the two rules keep different epochs of one trajectory: dev CCC
    peaks at epoch 1, the released code's criterion at epoch 2 (this seed, batch and rate were chosen so)."""
    return apply_overrides(tiny(), ["train.epochs=3", "train.batch_utterances=2", "train.lr_adam=0.02", "seed=3",
                                    f"train.keep_epoch={rule}"])


@contextlib.contextmanager
def _deterministic_algorithms():
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


def _interrupted_in_last_epoch(cfg, corpus, store, cache) -> None:
    def interrupt(progress):  # a Ctrl-C in the last epoch's joint stage: epochs 0 and 1 are on disk
        if progress.epoch == 2 and progress.stage == "train joint":
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, corpus, store, cache, progress=interrupt)


@pytest.fixture(scope="module")
def runs_by_rule(tiny_corpus, cache, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("rules"))
    with _deterministic_algorithms():
        return {rule: train(_rules_disagree(rule), tiny_corpus, store, cache) for rule in ("dev_ccc", "authors")}


def test_history_records_both_criteria_and_keeps_the_epoch_of_the_configured_rule(runs_by_rule):
    """Issue 30: every epoch records dev_ccc_mean and dev_chunk_loss; "dev_ccc" keeps the highest mean dev CCC,
    "authors" the lowest chunk-level loss; the trajectories are the same, only the kept epoch differs."""
    by_ccc, by_authors = runs_by_rule["dev_ccc"], runs_by_rule["authors"]
    history = by_ccc.history.set_index("epoch")
    pd.testing.assert_frame_equal(history.drop(columns=["seconds", "best"]),
                                  by_authors.history.set_index("epoch").drop(columns=["seconds", "best"]))
    assert np.isfinite(history[["dev_ccc_mean", "dev_chunk_loss"]]).all().all()
    assert by_ccc.run.metrics().best_epoch == kept_epoch(by_ccc.history) == history["dev_ccc_mean"].idxmax() == 1
    assert by_authors.run.metrics().best_epoch == kept_epoch(by_authors.history) == history["dev_chunk_loss"].idxmin() == 2
    assert by_ccc.test_ccc != by_authors.test_ccc  # two different networks kept
    assert by_ccc.run.run_id != by_authors.run.run_id


@pytest.mark.parametrize("rule", ["dev_ccc", "authors"])
def test_resumed_run_keeps_the_epoch_of_a_run_trained_straight_through(rule, runs_by_rule, tiny_corpus, cache, tmp_path):
    """Interrupted in epoch 2, the kept epoch so far (1 by dev CCC, 0 by the authors' criterion) comes back from the
    history, and the resumed run keeps what the uninterrupted one kept."""
    cfg, store = _rules_disagree(rule), RunStore(tmp_path)
    with _deterministic_algorithms():
        _interrupted_in_last_epoch(cfg, tiny_corpus, store, cache)
        resumed = train(cfg, tiny_corpus, store, cache)
    straight = runs_by_rule[rule]
    assert resumed.trained and resumed.run.metrics().best_epoch == straight.run.metrics().best_epoch
    pd.testing.assert_frame_equal(resumed.history.drop(columns="seconds"), straight.history.drop(columns="seconds"))
    assert resumed.test_ccc == straight.test_ccc


def test_run_interrupted_before_the_authors_criterion_existed_resumes(runs_by_rule, tiny_corpus, cache, tmp_path):
    """A history written by the code before issue 30 (no dev_chunk_loss) resumes; its epochs show the criterion
    as missing, and the kept epoch is the uninterrupted run's."""
    cfg, store = _rules_disagree("dev_ccc"), RunStore(tmp_path)
    with _deterministic_algorithms():
        _interrupted_in_last_epoch(cfg, tiny_corpus, store, cache)
        with store.writer(run_info(cfg, tiny_corpus)) as writer:  # journaled: the rewrite is not corruption
            rows = [json.loads(line) for line in (writer.dir / "history.jsonl").read_text().splitlines()]
            writer.write_bytes("history.jsonl", "".join(
                json.dumps({k: v for k, v in row.items() if k != "dev_chunk_loss"}, sort_keys=True) + "\n"
                for row in rows).encode())
        resumed = train(cfg, tiny_corpus, store, cache)
    assert resumed.history["dev_chunk_loss"].isna().tolist() == [True, True, False]
    assert resumed.run.metrics().best_epoch == runs_by_rule["dev_ccc"].run.metrics().best_epoch
    assert resumed.test_ccc == runs_by_rule["dev_ccc"].test_ccc


def test_ccc_unbiased_reaches_the_joint_stages_loss(runs_by_rule, tiny_corpus, cache, tmp_path):
    """`train.ccc_unbiased` (the paper presets) trains on the released code's loss: a run of its own, whose joint
    1 - CCC differs (batches of 4 chunks: the variances differ by 4/3)."""
    cfg = apply_overrides(_rules_disagree("dev_ccc"), ["train.ccc_unbiased=true"])
    result = train(cfg, tiny_corpus, RunStore(tmp_path), cache)
    population = runs_by_rule["dev_ccc"]
    assert result.run.run_id != population.run.run_id
    assert (result.history["joint_ccc_loss"] - population.history["joint_ccc_loss"]).abs().min() > 1e-4
