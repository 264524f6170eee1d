"""Other representations as runs (issue 32): acoustic baselines and imported embeddings, fitted on the corpus's splits,
explored, located and evaluated like trained runs; and every bad embeddings file refused with counts and examples."""
import numpy as np
import pandas as pd
import pytest

from core.data.corpus_formats import load_manifest
from core.data.synthetic import make_demo_corpus
from core.explore.analysis import analyze
from core.explore.exploration import analyze_exploration, explore, project, utterance_table
from core.explore.locator import Locator
from core.explore.suspects import run_suspects
from core.represent.embeddings_file import EmbeddingsFileError
from core.represent.fitting import fit_representation, latent_space
from core.represent.space import ForeignCorpusError
from core.represent.vectors import RepresentationError
from core.store.run_store import RunStore
from core.training.representations import baseline_run, embeddings_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("representations")
    return load_manifest(make_demo_corpus(folder / "demo", n_train=40, n_dev=12, n_test=12, n_unlabelled=16))


def _planted(corpus: pd.DataFrame, noise: float, seed: int = 0) -> np.ndarray:
    """16-d vectors along one direction by the clip's arousal (the corpus mean where unlabelled), plus noise in all
    dimensions: a model whose embedding encodes arousal."""
    rng = np.random.default_rng(seed)
    arousal = corpus["arousal"].fillna(corpus["arousal"].mean()).to_numpy()
    direction = rng.standard_normal(16)
    return np.outer(arousal - arousal.mean(), direction / np.linalg.norm(direction)) + noise * rng.standard_normal((len(corpus), 16))


def test_a_planted_arousal_direction_gives_high_dependence_and_ccc_and_noise_gives_neither(corpus):
    findings = {}
    for name, vectors in {"planted": _planted(corpus, 0.05), "noise": np.random.default_rng(1).standard_normal((len(corpus), 16))}.items():
        representation = fit_representation(vectors, corpus, name, [f"e{i}" for i in range(16)], n_clusters=4)
        space = latent_space(corpus.index, vectors, representation, "K-means")
        labelled = corpus["split"] != "unlabelled"
        report = analyze(space.cluster, corpus[["arousal"]], space.predictions[["arousal"]], n_shuffles=20)
        test = (corpus["split"] == "test").to_numpy()
        from core.model.metrics import ccc
        findings[name] = (report.dependence.loc[("label", "arousal")], ccc(corpus["arousal"][test].to_numpy(),
                                                                         space.predictions["arousal"][test].to_numpy()))
        assert labelled.any()
    planted, noise = findings["planted"], findings["noise"]
    assert planted[1] > 0.8 and abs(noise[1]) < 0.4
    assert planted[0]["epsilon2"] > 0.5 and planted[0]["epsilon2"] > planted[0]["shuffled_epsilon2_mean"] + 5 * planted[0]["shuffled_epsilon2_std"]
    assert abs(noise[0]["epsilon2"] - noise[0]["shuffled_epsilon2_mean"]) < 4 * noise[0]["shuffled_epsilon2_std"] + 0.02


@pytest.fixture(scope="module")
def store(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("representation-runs")
    runs, cache = RunStore(root / "runs"), root / "cache"
    made = {features: baseline_run(corpus, features, runs, cache) for features in ("logmel-stats", "egemaps")}
    table = pd.DataFrame({"path": corpus.index, "vector": list(_planted(corpus, 0.3))})
    table.to_parquet(root / "wavlm.parquet")
    made["embeddings"] = embeddings_run(corpus, root / "wavlm.parquet", runs)
    return runs, cache, made


def test_baselines_and_embeddings_are_runs_every_reader_takes(corpus, store):
    runs, cache, made = store
    assert {r.run_id for r in runs.list()} == {r.run_id for r in made.values()}
    assert made["egemaps"].info.kind == "baseline" and made["embeddings"].info.kind == "embeddings"
    assert baseline_run(corpus, "egemaps", runs, cache).run_id == made["egemaps"].run_id  # found, not fitted again
    for run in made.values():
        exploration = explore(run, cache_root=cache)
        table = utterance_table(exploration, project(exploration))
        assert len(table) == len(corpus) and table["cluster"].nunique() > 1 and table["arousal_predicted"].notna().all()
        assert not analyze_exploration(exploration, n_shuffles=5).dependence.empty
        assert set(run_suspects(exploration)["attribute"]) == {"arousal", "valence", "dominance"}
        ccc = run.metrics().test_ccc["test"]
        assert set(ccc) == {"arousal", "valence", "dominance"} and run.test_predictions() is not None
    assert made["embeddings"].metrics().test_ccc["test"]["arousal"] > 0.5  # the planted direction is found
    assert len(np.load(made["egemaps"].file("vectors.npy"))[0]) == 88  # eGeMAPSv02's functionals


def test_a_baseline_locates_new_clips_and_imported_embeddings_say_they_cannot(corpus, store):
    runs, cache, made = store
    exploration = explore(made["logmel-stats"], cache_root=cache)
    located = Locator(exploration, project(exploration)).locate_files([corpus["path"].iloc[0], "/no/such.wav"])
    assert located.table.index.tolist() == [corpus["path"].iloc[0]] and "/no/such.wav" in located.errors
    assert located.table["cluster"].iloc[0] == exploration.latent.cluster[0]  # a corpus clip lands in its own cluster
    assert located.chunks["start_s"].iloc[0] == 0.0  # a baseline hears the clip whole: one chunk
    exploration = explore(made["embeddings"], cache_root=cache)
    locator = Locator(exploration, project(exploration))
    assert len(locator.corpus_neighbours(corpus.index[0])) == 5  # the corpus's own neighbours need no embedding
    with pytest.raises(ForeignCorpusError, match="imported embeddings: a new clip has none here"):
        locator.locate_files([corpus["path"].iloc[0]])
    with pytest.raises(ForeignCorpusError, match="its own corpus only"):
        explore(made["embeddings"], corpus.iloc[:-1].assign(path=corpus["path"].iloc[:-1]).rename(index=lambda f: "x/" + f),
                cache_root=cache)


def test_an_egemaps_baseline_hears_a_new_clip_as_it_heard_the_corpus_and_names_the_clips_it_cannot(corpus, store,
                                                                                                   tmp_path):
    import soundfile as sf
    from core.represent.predictor import VectorPredictor
    runs, cache, made = store
    silent, broken = tmp_path / "silent.wav", tmp_path / "broken.wav"
    sf.write(silent, np.zeros(16_000, np.float32), 16_000)
    broken.write_bytes(b"not audio")
    clip = corpus["path"].iloc[0]
    loaded = VectorPredictor(made["egemaps"]).load([str(broken), clip, str(silent)], refuse_silent=True)
    assert [c.path for c in loaded.clips] == [clip] and list(loaded.errors) == [str(broken), str(silent)]
    assert loaded.errors[str(silent)] == "silent: every sample is zero"
    fitted = np.load(made["egemaps"].file("vectors.npy"))[0]  # the corpus's first clip, as the baseline was fitted
    np.testing.assert_allclose(loaded.clips[0].features[0], fitted, rtol=1e-5)


def test_without_opensmile_egemaps_says_so_and_logmel_stats_still_works(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr("core.represent.vectors.importlib.util.find_spec", lambda name: None)
    with pytest.raises(RepresentationError, match="needs the `opensmile` package.*logmel-stats works without it"):
        baseline_run(corpus, "egemaps", RunStore(tmp_path / "runs"), tmp_path / "cache")
    assert baseline_run(corpus, "logmel-stats", RunStore(tmp_path / "runs"), tmp_path / "cache").info.kind == "baseline"


def _table(corpus, vectors=None, paths=None) -> pd.DataFrame:
    vectors = list(np.ones((len(corpus), 4)) if vectors is None else vectors)
    return pd.DataFrame({"path": list(corpus.index) if paths is None else paths, "vector": vectors})


@pytest.mark.parametrize("make, message", [
    (lambda c: _table(c.iloc[:-3]), "3 clips of the corpus have no vector, e.g. audio/demo_"),
    (lambda c: pd.concat([_table(c), _table(c.iloc[:2]).assign(path=["elsewhere/a.wav", "b.wav"])]),
     "2 paths are not clips of this corpus, e.g. elsewhere/a.wav, b.wav"),
    (lambda c: pd.concat([_table(c), _table(c.iloc[:1])]), "1 paths appear more than once"),
    (lambda c: _table(c, [np.full(4, np.nan)] + [np.ones(4)] * (len(c) - 1)), "1 vectors hold NaN or infinite values"),
    (lambda c: _table(c, [np.full(4, np.inf)] * 2 + [np.ones(4)] * (len(c) - 2)), "2 vectors hold NaN or infinite"),
    (lambda c: _table(c, [np.ones(3)] + [np.ones(4)] * (len(c) - 1)), "ragged or zero-length vectors"),
    (lambda c: _table(c, [np.ones(0)] * len(c)), "ragged or zero-length vectors"),
    (lambda c: _table(c, paths=[f"other/{i}.wav" for i in range(len(c))]), "none of its .* paths is a clip of this corpus"),
    (lambda c: pd.DataFrame({"path": c.index, "name": "x"}), "expected one vector column or numbered columns"),
    (lambda c: pd.DataFrame({"file": c.index, "e0": 1.0}), "expected a 'path' column"),
])
def test_a_bad_embeddings_file_is_one_message_with_counts_and_examples_and_nothing_is_stored(corpus, tmp_path, make, message):
    path = tmp_path / "bad.parquet"
    make(corpus).to_parquet(path)
    runs = RunStore(tmp_path / "runs")
    with pytest.raises(EmbeddingsFileError, match=message):
        embeddings_run(corpus, path, runs)
    assert runs.list() == [] and not (tmp_path / "runs").exists()


def test_numbered_columns_and_npy_with_paths_read_as_the_same_vectors(corpus, tmp_path):
    from core.represent.embeddings_file import read_embeddings
    vectors = np.random.default_rng(0).standard_normal((len(corpus), 3))
    order = np.random.default_rng(1).permutation(len(corpus))  # any row order: matched by path
    pd.DataFrame({"path": corpus.index[order], **{f"dim_{i}": vectors[order, i] for i in (2, 0, 1)}}).to_parquet(tmp_path / "n.parquet")
    np.save(tmp_path / "m.npy", vectors[order])
    pd.DataFrame({"path": corpus["path"].to_numpy()[order]}).to_csv(tmp_path / "m.csv", index=False)  # audio files
    numbered, columns = read_embeddings(tmp_path / "n.parquet", corpus)
    matrix, _ = read_embeddings(tmp_path / "m.npy", corpus, tmp_path / "m.csv")
    assert columns == ["dim_0", "dim_1", "dim_2"]
    np.testing.assert_allclose(numbered, vectors, rtol=1e-6)
    np.testing.assert_allclose(matrix, vectors, rtol=1e-6)
    with pytest.raises(EmbeddingsFileError, match="needs the CSV of its rows' paths"):
        read_embeddings(tmp_path / "m.npy", corpus)


def test_the_cli_makes_a_baseline_and_imports_embeddings(corpus, tmp_path, capsys):
    from core.cli.main import main
    manifest = tmp_path / "corpus.csv"
    corpus.reset_index(drop=True).to_csv(manifest, index=False)
    runs = tmp_path / "runs"
    assert main(["--runs-dir", str(runs), "baseline", "--corpus", str(manifest), "--features", "logmel-stats",
                 "--clusters", "5"]) == 0
    said = capsys.readouterr().out
    assert "logmel-stats, K = 5" in said and "test CCC with 95 % bootstrap intervals" in said and "arousal" in said
    _table(load_manifest(manifest), _planted(corpus, 0.3)).to_parquet(tmp_path / "e.parquet")
    assert main(["--runs-dir", str(runs), "import-embeddings", "--corpus", str(manifest), "--embeddings",
                 str(tmp_path / "e.parquet"), "--name", "wavlm-large"]) == 0
    assert "(embeddings: embeddings-wavlm-large, K = 10)" in capsys.readouterr().out  # no trained run here: K = 10
    pd.DataFrame({"path": ["x.wav"], "vector": [np.ones(2)]}).to_parquet(tmp_path / "bad.parquet")
    assert main(["--runs-dir", str(runs), "import-embeddings", "--corpus", str(manifest), "--embeddings",
                 str(tmp_path / "bad.parquet")]) == 2
    assert "none of its 1 paths is a clip of this corpus" in capsys.readouterr().err


def test_the_default_k_is_the_newest_trained_run_over_the_same_corpus(corpus, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from core.config import tiny
    from core.data.manifest import corpus_fingerprint
    from core.training.representations import default_clusters
    runs = RunStore(tmp_path / "runs")
    assert default_clusters(runs, corpus_fingerprint(corpus)) == 10
    cfg = tiny()
    other = SimpleNamespace(info=SimpleNamespace(trained=True, corpus_fingerprint="another corpus"), config=cfg)
    paired = SimpleNamespace(info=SimpleNamespace(trained=True, corpus_fingerprint=corpus_fingerprint(corpus)), config=cfg)
    monkeypatch.setattr(RunStore, "list", lambda self: [other, paired])
    assert default_clusters(runs, corpus_fingerprint(corpus)) == cfg.model.n_clusters != 10


def test_the_report_of_a_baseline_says_what_it_is(store, tmp_path):
    from core.report.report import write_report
    runs, cache, made = store
    page = write_report(made["logmel-stats"], tmp_path / "report", cache_root=cache).read_text()
    assert "baseline: logmel-stats features, standardised, clustered and regressed" in page
    assert "a baseline run is fitted, not trained" in page and "over its own corpus" in page
    assert "the published models" not in page
