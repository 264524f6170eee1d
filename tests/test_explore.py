"""Latent space, map, placement, analysis and exports on a tiny trained run and on the published models."""
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.manifold import trustworthiness

from core.config import UmapConfig, tiny
from core.data.corpus_formats import load_manifest
from core.explore.exploration import analyze_exploration, explore, project
from core.explore.locator import Locator
from core.explore.projection import LatentProjector
from core.model.bundle import load_bundle
from core.store.run_store import RunStore
from core.training.train import train
from tests.conftest import REPO
from tests.helpers import corrupt, sine, write_wav


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pd.DataFrame:
    from core.data.synthetic import make_demo_corpus
    return load_manifest(make_demo_corpus(tmp_path_factory.mktemp("explore-corpus"), n_train=30, n_dev=10,
                                          n_test=10, n_unlabelled=30))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("explore-cache")


@pytest.fixture(scope="module")
def exploration(corpus, cache, tmp_path_factory):
    result = train(tiny(), corpus, RunStore(tmp_path_factory.mktemp("explore-runs")), cache)
    return explore(result.run, cache_root=cache)


@pytest.fixture(scope="module")
def coords(exploration):
    return project(exploration)


def test_latent_space_shapes_and_clusters(exploration):
    latent = exploration.latent
    assert len(latent.files) == 80 and latent.n_chunks == 2
    assert latent.embeddings["cluster"].shape == (80, 16) and latent.chunk_embeddings["latent"].shape == (160, 16)
    assert latent.centroid_source == "training" and latent.centroids.shape == (3, 16)
    np.testing.assert_allclose(latent.cluster_share.sum(1), 1.0, rtol=1e-6)
    assert set(np.unique(latent.cluster)) <= {0, 1, 2}
    assert list(latent.predictions.columns) == ["arousal", "valence", "dominance"]
    assert list(exploration.corpus.index) == list(latent.files)


def test_explore_is_computed_once(exploration, cache):
    marker = exploration.folder / "COMPLETE"
    before = marker.stat().st_mtime_ns
    again = explore(exploration.run, cache_root=cache)
    assert marker.stat().st_mtime_ns == before
    np.testing.assert_array_equal(again.latent.embeddings["cluster"], exploration.latent.embeddings["cluster"])


def test_projection_is_cached_and_trustworthy(exploration, coords):
    assert coords.shape == (80, 2) and np.isfinite(coords).all()
    assert len(list((exploration.folder / "projections").glob("*.npy"))) == 1
    np.testing.assert_array_equal(project(exploration), coords)  # cache hit: identical
    X = exploration.latent.embeddings["cluster"]
    assert trustworthiness(X, coords, n_neighbors=5) >= 0.8


def test_corrupted_latent_space_and_map_are_recomputed_equal(exploration, coords, cache, tmp_path):
    shutil.copytree(exploration.run.dir, tmp_path / exploration.run.run_id)  # the fixture's files stay intact
    run = RunStore(tmp_path).load(exploration.run.run_id)
    folder = run.dir / exploration.folder.relative_to(exploration.run.dir)
    (projection,) = (folder / "projections").glob("*.npy")
    corrupt(folder / "chunk_cluster.npy", "flip")
    corrupt(projection, "truncate")
    with pytest.warns(UserWarning, match="chunk_cluster.npy: .*computing this latent space again"):
        again = explore(run, cache_root=cache)
    for name in ("chunk_cluster", "cluster", "cluster_share", "centroids"):
        np.testing.assert_array_equal(getattr(again.latent, name), getattr(exploration.latent, name))
    np.testing.assert_array_equal(again.latent.embeddings["cluster"], exploration.latent.embeddings["cluster"])
    with pytest.warns(UserWarning, match=f"{projection.name}: .*fitting this projection again"):
        np.testing.assert_array_equal(project(again), coords)


def test_projector_places_the_unfitted_rest_inside_the_map():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, size=(150, 8)) for c in (0, 3, 6)]).astype(np.float32)
    projector = LatentProjector(UmapConfig(sample_size=200)).fit(X)
    assert len(projector.sample_index_) == 200 and projector.coords_.shape == (450, 2)
    assert trustworthiness(X, projector.coords_, n_neighbors=10) >= 0.8
    lo, hi = projector.embedding_.min(0), projector.embedding_.max(0)
    assert ((projector.coords_ >= lo - 1e-5) & (projector.coords_ <= hi + 1e-5)).all()
    far = projector.transform(np.full((1, 8), 100.0, np.float32))  # far outside the data: still inside the map
    assert ((far >= lo) & (far <= hi)).all()


WARM_UP_CHECK = """
import sys
import numpy as np
from numba.core.registry import CPUDispatcher
from core.explore.projection import LatentProjector, warm_up

def compiled():  # signatures compiled by every numba function of umap-learn's modules
    return {f"{module}.{name}": len(f.signatures) for module, m in list(sys.modules.items()) if module.startswith("umap")
            for name, f in vars(m).items() if isinstance(f, CPUDispatcher)}

warm_up()
after_warm_up = compiled()
assert after_warm_up["umap.layouts._nb_optimize_layout_euclidean_single_epoch"], after_warm_up
assert after_warm_up["umap.umap_.smooth_knn_dist"], after_warm_up
LatentProjector().fit(np.random.default_rng(1).normal(size=(600, 40)).astype(np.float32))  # demo-sized, other dims
new = {name: n for name, n in compiled().items() if n != after_warm_up.get(name)}
assert not new, f"the real fit compiled more: {new}"
"""


@pytest.mark.slow
def test_warm_up_compiles_what_a_demo_sized_map_runs():
    # a process of its own: in this one, earlier tests' maps have compiled the code already
    done = subprocess.run([sys.executable, "-c", WARM_UP_CHECK], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]


def test_locate_round_trip_and_in_extent(exploration, coords, tmp_path):
    locator = Locator(exploration, coords)
    own = list(exploration.corpus["path"][:3])
    new = write_wav(tmp_path / "tone.wav", sine(2.0, frequency_hz=300))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"nope")
    located = locator.locate_files([*own, new, broken], n_neighbours=3)
    table, errors = located.table, located.errors
    assert list(errors) == [str(broken)] and len(table) == 4
    extent = np.ptp(coords, axis=0).max()
    for i, path in enumerate(own):  # a corpus clip lands on its own point, its own nearest neighbour
        assert np.linalg.norm(table.loc[path, ["x", "y"]].to_numpy(float) - coords[i]) < 0.02 * extent
        assert table.loc[path, "neighbours"][0] == exploration.corpus.index[i]
    lo, hi = coords.min(0), coords.max(0)
    assert ((table[["x", "y"]].to_numpy() >= lo - 1e-5) & (table[["x", "y"]].to_numpy() <= hi + 1e-5)).all()
    assert table["cluster"].between(0, 2).all()
    # out of distribution: corpus clips are at distance ~0 from their own point; the flag follows the threshold
    assert located.novelty is not None and located.novelty.n_corpus == len(coords)
    assert (table.loc[own, "nearest_distance"] < 1e-4).all() and not table.loc[own, "out_of_distribution"].any()
    assert table.at[str(new), "out_of_distribution"] == (table.at[str(new), "nearest_distance"] > located.novelty.threshold)
    assert (exploration.folder / "novelty" / "distances.json").exists()  # cached beside the latent space


def test_analyze_exploration_reports_both_sources(exploration):
    report = analyze_exploration(exploration, n_shuffles=5)
    assert set(report.dependence.index.get_level_values("source")) == {"label", "prediction"}
    assert report.categorical is not None and report.contingency.to_numpy().sum() == 50  # labelled clips


def test_published_models_through_analyze_locate_export(official_run, corpus, tmp_path, capsys, monkeypatch):
    from core.cli.main import main
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "data"))
    manifest = str(tmp_path / "manifest.csv")
    corpus.assign(path=corpus["path"]).reset_index(drop=True)[["path", "split", "arousal", "valence", "dominance",
                                                                "speaker", "emotion"]].to_csv(manifest, index=False)
    base = ["--runs-dir", str(official_run.dir.parent)]
    assert main([*base, "analyze", "--corpus", manifest, "--shuffles", "3"]) == 0
    out = capsys.readouterr().out
    assert "network arousal" in out and "k-means on this corpus" in out and "kruskal_h" in out
    clip = corpus["path"].iloc[0]
    assert main([*base, "locate", "--corpus", manifest, clip, "--out", str(tmp_path / "located.csv")]) == 0
    located = pd.read_csv(tmp_path / "located.csv")
    assert set(["arousal", "valence", "dominance", "cluster", "x", "y", "neighbours"]) <= set(located.columns)
    for fmt in ("csv", "parquet", "json"):
        assert main([*base, "export", "--corpus", manifest, "--format", fmt, "--out", str(tmp_path / fmt)]) == 0
        names = sorted(p.stem for p in (tmp_path / fmt).iterdir())
        assert names == ["cluster_emotion", "contingency", "dependence", "embeddings", "utterances"]
    utterances = pd.read_parquet(tmp_path / "parquet" / "utterances.parquet")
    assert len(utterances) == 80 and {"x", "y", "cluster", "arousal_predicted"} <= set(utterances.columns)


def test_locate_a_corpus_clip_lands_on_its_own_corpus_point(exploration, coords):
    """One forward path (issue 10): a corpus clip located as an upload gets its corpus point's embedding,
    cluster and prediction, and lands on the map where the corpus point is."""
    corpus, latent = exploration.corpus, exploration.latent
    picks = [int(np.flatnonzero(corpus["split"].to_numpy() == split)[0]) for split in ("train", "dev", "unlabelled")]
    paths = [str(corpus["path"].iloc[i]) for i in picks]
    locator = Locator(exploration, coords)
    loaded = locator.predictor.load(paths)
    clips, errors = loaded.clips, loaded.errors
    assert errors == {}
    predicted = locator.predictor.predict_chunks([c.features for c in clips])
    outputs = predicted.outputs[exploration.network]
    for space, chunk in (("cluster", outputs.cluster_features), ("latent", outputs.latent)):
        embedding = chunk.reshape(len(picks), latent.n_chunks, -1).mean(1)
        np.testing.assert_allclose(embedding, latent.embeddings[space][picks], atol=1e-5, rtol=0)
    located = locator.locate_files(paths)
    table, errors = located.table, located.errors
    assert errors == {}
    assert list(table["cluster"]) == list(latent.cluster[picks])
    for attribute in latent.predictions.columns:
        np.testing.assert_allclose(table[attribute], latent.predictions[attribute].iloc[picks], atol=1e-5, rtol=0)
    extent = coords.max(0) - coords.min(0)
    assert np.all(np.abs(table[["x", "y"]].to_numpy() - coords[picks]) <= 1e-3 * extent)


def test_chunk_timeline_of_a_corpus_clip_and_of_the_same_clip_located(exploration, coords):
    """The clip inspector's timeline (issue 12): each chunk's span, cluster and predictions, the same for a
    corpus clip read from its latent space and for that clip located as an upload; chunks placed on the map."""
    from core.store.latent import chunk_timeline
    corpus, latent, cfg = exploration.corpus, exploration.latent, exploration.run.config
    frame_s = cfg.features.hop_length / cfg.audio.sampling_rate
    file = corpus.index[int(np.flatnonzero(corpus["split"].to_numpy() == "train")[0])]
    timeline = chunk_timeline(latent, file, frame_s, cfg.chunks.chunk_frames)
    assert list(timeline["chunk"]) == list(range(latent.n_chunks))
    assert (timeline["start_s"] >= 0).all() and np.allclose(timeline["end_s"] - timeline["start_s"],
                                                            cfg.chunks.chunk_frames * frame_s)
    assert timeline["start_s"].is_monotonic_increasing and timeline["start_s"].iloc[0] == 0
    assert list(timeline["cluster"]) == list(latent.chunk_cluster[latent.chunk_rows(file)])
    for attribute in latent.predictions.columns:  # the utterance's prediction is its chunks' mean
        assert timeline[attribute].mean() == pytest.approx(latent.predictions.at[file, attribute], abs=1e-5)
    locator = Locator(exploration, coords)
    located = locator.locate_files([corpus.at[file, "path"]])
    chunks = located.chunks.loc[str(corpus.at[file, "path"])]
    assert list(chunks["cluster"]) == list(timeline["cluster"])
    for attribute in latent.predictions.columns:
        np.testing.assert_allclose(chunks[attribute], timeline[attribute], atol=1e-4)
    positions = locator.chunk_positions(file)
    extent = coords.max(0) - coords.min(0)
    assert positions.shape == (latent.n_chunks, 2)
    assert np.all(np.abs(positions - chunks[["x", "y"]].to_numpy()) <= 1e-2 * extent)  # float16 chunk store


def test_latent_caches_of_another_format_are_never_read(exploration, cache):
    """The format version is part of the cache key: a latent space written before the one forward path
    (folder without the version) is not mixed in; the current one is read back as it was written."""
    from core.store.latent import LATENT_FORMAT_VERSION
    assert exploration.folder.name.endswith(f"-v{LATENT_FORMAT_VERSION}")
    old = exploration.folder.with_name(exploration.folder.name.rsplit("-v", 1)[0])  # the previous version's key
    shutil.copytree(exploration.folder, old, dirs_exist_ok=True)
    again = explore(exploration.run, cache_root=cache)
    assert again.folder == exploration.folder
    np.testing.assert_array_equal(again.latent.embeddings["cluster"], exploration.latent.embeddings["cluster"])


def test_prototypes_are_the_members_nearest_each_centroid(exploration):
    from core.explore.exploration import prototypes
    latent = exploration.latent
    table = prototypes(exploration, k=2)
    for cluster, rows in table.groupby("cluster"):
        members = np.flatnonzero(latent.cluster == cluster)
        distance = np.linalg.norm(latent.embeddings["cluster"][members] - latent.centroids[cluster], axis=1)
        assert list(rows["file"]) == list(latent.files[members[np.argsort(distance)[:2]]])
        assert list(rows["rank"]) == list(range(1, len(rows) + 1)) and rows["distance"].is_monotonic_increasing


def test_compare_selection_against_all_points():
    from core.explore.analysis import compare_selection
    table = pd.DataFrame({"arousal": [1.0, 2.0, 3.0, np.nan]}, index=list("abcd"))
    out = compare_selection(table, pd.Index(["a", "b", "d"]), ["arousal"])
    assert out.loc["arousal", "selection mean"] == 1.5 and out.loc["arousal", "all mean"] == 2.0
    assert out.loc["arousal", "difference"] == -0.5 and out.loc["arousal", "n selected"] == 2


def test_corpus_to_explore_is_the_runs_own_or_the_demo_corpus(exploration, official_run, tmp_path):
    from core.explore.exploration import corpus_to_explore
    pd.testing.assert_frame_equal(corpus_to_explore(exploration.run), exploration.run.corpus())
    from core.data.synthetic import make_demo_corpus
    make_demo_corpus(tmp_path / "demo", n_train=4, n_dev=2, n_test=2, n_unlabelled=2)
    demo = corpus_to_explore(official_run, tmp_path / "demo")  # an imported model has no corpus of its own
    assert len(demo) == 10 and set(demo["split"]) == {"train", "dev", "test", "unlabelled"}


def test_a_runs_networks_are_named_without_loading_its_model(exploration, official_run):
    """`RunInfo.networks` (what `explore` checks a network against, the model unloaded) names the bundle's networks."""
    for run in (exploration.run, official_run):
        assert sorted(run.info.networks) == sorted(load_bundle(run).networks)  # config.json keeps keys sorted
    assert len(exploration.run.info.networks) == 1 and set(official_run.info.networks) == {"arousal", "valence", "dominance"}


def test_exported_utterances_give_path_and_file_in_one_convention(exploration, coords, tmp_path):
    """Issue 29: `file` was "audio/demo_0000.wav" and `path` "demo_0000.wav", relative to another folder."""
    from core.explore.export import export_exploration
    report = analyze_exploration(exploration, n_shuffles=2)
    for absolute in (False, True):
        written = export_exploration(exploration, report, coords, tmp_path / str(absolute), "csv", absolute_paths=absolute)
        utterances = pd.read_csv(next(p for p in written if p.stem == "utterances"), index_col="file")
        assert utterances.index[0].startswith("audio/")  # the demo corpus's keys name its audio folder
        if absolute:
            assert list(utterances["path"]) == list(exploration.corpus["path"])
        else:
            assert list(utterances["path"]) == list(utterances.index)  # both relative to the manifest's folder


def test_suspects_cli_ranks_each_attributes_labels_with_paths_relative_to_the_corpus(exploration, tmp_path, capsys):
    """Issue 31, item 1: `python -m core suspects` over a trained run's own corpus."""
    from core.cli.main import main
    out = tmp_path / "suspects.csv"
    assert main(["--runs-dir", str(exploration.run.dir.parent), "suspects", "--top", "3", "--out", str(out)]) == 0
    ranked = pd.read_csv(out, index_col="file")
    labelled = exploration.corpus[["arousal", "valence", "dominance"]].notna()
    assert sorted(ranked["attribute"].unique()) == sorted(a for a in labelled if labelled[a].sum() >= 2)
    assert all(rows["rank"].tolist() == [1, 2, 3] for _, rows in ranked.groupby("attribute"))
    assert (ranked["path"] == ranked.index).all()  # relative to the corpus folder, as the keys are
    assert (ranked.groupby("attribute")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert "most suspicious:" in capsys.readouterr().out
    assert main(["--runs-dir", str(exploration.run.dir.parent), "suspects", "--attribute", "dominance",
                 "--out", str(tmp_path / "d.csv")]) == 0
    assert set(pd.read_csv(tmp_path / "d.csv")["attribute"]) == {"dominance"}


def test_suspects_are_cached_with_the_exploration(exploration, monkeypatch):
    from core.explore import suspects
    first = suspects.run_suspects(exploration)
    monkeypatch.setattr(suspects, "suspect_labels", lambda *a, **k: pytest.fail("the ranking was computed again"))
    pd.testing.assert_frame_equal(suspects.run_suspects(exploration), first)


def test_export_corpus_cli_writes_the_corrected_manifest_and_exports_carry_the_tags(exploration, tmp_path, capsys):
    """Issue 31, items 4 and 6: tags reach every exported utterance table; export-corpus applies the edits."""
    from core.cli.main import main
    from core.config import LabelConfig
    from core.curate.edits import corpus_log, curation, mark_unusable, set_label, tag
    runs = exploration.run.dir.parent
    corpus = exploration.corpus
    log = corpus_log(corpus, runs)
    labelled = list(corpus.index[corpus["split"] == "train"][:2])
    edits = log.append(tag(corpus, curation(log.read()), labelled, "checked by ear"))
    edits = log.append(set_label(corpus, curation(edits), labelled[0], "arousal", 1.25, LabelConfig()))
    log.append(mark_unusable(corpus, curation(edits), labelled[1:], "not speech"))
    try:
        assert main(["--runs-dir", str(runs), "export", "--out", str(tmp_path / "tables")]) == 0
        utterances = pd.read_csv(tmp_path / "tables" / "utterances.csv", index_col="file")
        assert utterances.loc[labelled, "tags"].tolist() == ["checked by ear"] * 2
        assert utterances["tags"].notna().sum() == 2 and utterances.at[labelled[1], "unusable"] == "not speech"
        assert main(["--runs-dir", str(runs), "suspects", "--out", str(tmp_path / "s.csv")]) == 0
        assert set(pd.read_csv(tmp_path / "s.csv").dropna(subset=["tags"])["file"]) == set(labelled)

        out = tmp_path / "fixed" / "manifest.csv"
        assert main(["--runs-dir", str(runs), "export-corpus", "--out", str(out)]) == 0
        said = capsys.readouterr().out
        assert "1 with edited labels, 1 unusable left out" in said and f"train --corpus {out}" in said
        fixed = load_manifest(out)
        assert len(fixed) == len(corpus) - 1 and 1.25 in fixed["arousal"].tolist()
        assert (out.parent / "manifest.edits.csv").is_file()
        assert main(["--runs-dir", str(runs), "export-corpus", "--out", str(tmp_path / "k.csv"), "--unusable", "unlabelled"]) == 0
        assert len(load_manifest(tmp_path / "k.csv")) == len(corpus)
    finally:
        shutil.rmtree(log.folder)  # the module's other tests see the corpus uncurated
