"""Stored test predictions, intervals without retraining, cross-corpus evaluation and the ablation's paired
difference (`core.evaluate.evaluation`, `core.store.evaluation_store`, `core.evaluate.cross_corpus`, `core.training.ablation`)."""
import shutil

import numpy as np
import pandas as pd
import pytest

from core.config import LabelConfig, tiny
from core.data.corpus_formats import load_manifest
from core.data.synthetic import make_demo_corpus
from core.evaluate.cross_corpus import ALL_LABELLED, evaluate_corpora, run_test_predictions
from core.evaluate.evaluation import estimate_text, split_estimates
from core.model.metrics import ccc
from core.store.atomic import COMPLETE, write_marker
from core.store.evaluation_store import evaluation_dir, stored_evaluations
from core.store.run_store import TEST_PREDICTIONS, RunStore
from core.training.ablation import ablation_partner, paired_difference
from core.training.train import train


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    own = make_demo_corpus(root / "own", n_train=16, n_dev=6, n_test=8, n_unlabelled=12)
    other = make_demo_corpus(root / "other", seed=3, n_train=0, n_dev=0, n_test=10, n_unlabelled=0)
    return root, load_manifest(own), other


@pytest.fixture(scope="module")
def run(corpora):
    root, corpus, _ = corpora
    return train(tiny(), corpus, RunStore(root / "runs"), root / "cache").run


def _verify_all_files(run):
    reloaded = RunStore(run.dir.parent).load(run.run_id)
    for name in [p.name for p in run.dir.iterdir() if p.is_file() and p.name not in (COMPLETE, ".lock")]:
        reloaded.file(name)  # raises CorruptFileError if anything vouched for changed


def test_a_run_stores_its_test_predictions_and_intervals(run, corpora):
    predictions = run.test_predictions()
    assert len(predictions) == 8 and set(predictions["split"]) == {"test"} and "speaker" in predictions
    metrics = run.metrics()
    for attribute in tiny().model.attributes:
        assert ccc(predictions[attribute], predictions[f"{attribute}_predicted"]) == pytest.approx(
            metrics.test_ccc["test"][attribute], abs=1e-6)
        interval = metrics.test_intervals["test"][attribute]
        assert interval["n"] == 8 and {"low", "high", "speaker_low", "speaker_high"} <= set(interval)


def test_runs_finished_before_predictions_were_stored_get_them_on_demand(run, tmp_path):
    old_dir = tmp_path / "runs" / run.run_id
    shutil.copytree(run.dir, old_dir)
    (old_dir / TEST_PREDICTIONS).unlink()
    write_marker(old_dir / COMPLETE, [p for p in old_dir.iterdir() if p.is_file() and p.name != COMPLETE])
    old = RunStore(tmp_path / "runs").load(run.run_id)
    assert old.test_predictions() is None
    computed = run_test_predictions(old, "cpu")
    stored = run.test_predictions()
    np.testing.assert_allclose(computed.loc[stored.index, "arousal_predicted"], stored["arousal_predicted"], atol=1e-4)
    again = RunStore(tmp_path / "runs").load(run.run_id)  # one home (issue 30): the run's own file, vouched for
    assert TEST_PREDICTIONS in again.checksums and not (old.dir / "evaluations").exists()
    _verify_all_files(again)
    pd.testing.assert_frame_equal(again.test_predictions(), computed)
    pd.testing.assert_frame_equal(run_test_predictions(again), computed)  # the second time it is read back


def test_test_predictions_a_crash_left_unvouched_are_not_trusted_and_written_again(run, tmp_path):
    """A crash between the file and `COMPLETE`'s new digest leaves a file the marker does not name: ignored."""
    old_dir = tmp_path / "runs" / run.run_id
    shutil.copytree(run.dir, old_dir)
    (old_dir / TEST_PREDICTIONS).unlink()
    write_marker(old_dir / COMPLETE, [p for p in old_dir.iterdir() if p.is_file() and p.name != COMPLETE])
    (old_dir / TEST_PREDICTIONS).write_bytes(b"half a parquet file")  # the crash
    old = RunStore(tmp_path / "runs").load(run.run_id)
    assert old.test_predictions() is None
    computed = run_test_predictions(old, "cpu")
    assert RunStore(tmp_path / "runs").load(run.run_id).test_predictions().equals(computed)


def test_cross_corpus_table_label_range_and_a_corpus_without_test_split(run, corpora, tmp_path):
    root, corpus, other_manifest = corpora
    other = load_manifest(other_manifest)
    rescaled = other.copy()  # the same corpus on a 0..1 scale
    for attribute in ("arousal", "valence", "dominance"):
        rescaled[attribute] = (other[attribute] - 1) / 6
    no_test = corpus[corpus["split"] == "dev"]
    evaluation = evaluate_corpora(run, {"other": other, "dev only": no_test}, {"other": "o", "dev only": "d"})
    table = evaluation.table
    assert set(table.index.get_level_values("corpus")) == {"other", "dev only"}
    assert table.loc[("other", "test", "arousal"), "n"] == 10
    assert table.loc[("dev only", ALL_LABELLED, "arousal"), "n"] == 6
    assert any("dev only has no test split" in note for note in evaluation.notes)
    scaled = evaluate_corpora(run, {"other": rescaled}, {"other": "o"}, label_range=(0.0, 1.0))
    assert scaled.table.loc[("other", "test", "arousal"), "ccc"] == pytest.approx(table.loc[("other", "test", "arousal"), "ccc"])
    assert len(stored_evaluations(run.dir)) == 2
    _verify_all_files(run)


def test_an_attribute_without_labels_is_undefined_with_its_reason(run, corpora):
    _, corpus, _ = corpora
    unlabelled_valence = corpus.assign(valence=np.nan)
    evaluation = evaluate_corpora(run, {"no valence": unlabelled_valence}, {"no valence": "x"})
    row = evaluation.table.loc[("no valence", "test", "valence")]
    assert row["reason"] == "no labelled utterances" and row["n"] == 0 and np.isnan(row["ccc"])
    assert "undefined: no labelled utterances" in estimate_text(evaluation.table).to_string()


def test_a_corrupted_evaluation_is_computed_again(run, corpora):
    _, _, other_manifest = corpora
    other = load_manifest(other_manifest)
    first = evaluate_corpora(run, {"again": other}, {"again": "a"})
    (evaluation_dir(run.dir, first.key) / "table.parquet").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="evaluating again"):
        second = evaluate_corpora(run, {"again": other}, {"again": "a"})
    pd.testing.assert_frame_equal(first.table, second.table)


def test_paired_difference_of_the_ablation(app_data):
    runs = RunStore(app_data / "runs").list()
    with_run = next(r for r in runs if r.config.train.use_unlabelled)
    without = ablation_partner(with_run, runs)
    table = paired_difference(with_run, without)
    a, b = with_run.test_predictions(), without.test_predictions()
    expected = ccc(a["arousal"], a["arousal_predicted"]) - ccc(b["arousal"], b.loc[a.index, "arousal_predicted"])
    assert table.loc[("test", "arousal"), "difference"] == pytest.approx(expected)
    assert table.loc[("test", "arousal"), "low"] <= expected <= table.loc[("test", "arousal"), "high"]
    assert "CCC difference [95 % CI]" in estimate_text(table)


def test_cli_evaluate_several_corpora_with_label_range(run, corpora, tmp_path, capsys):
    from core.cli.main import main
    root, _, other_manifest = corpora
    other = load_manifest(other_manifest)
    scaled = other.assign(**{a: (other[a] - 1) / 6 for a in ("arousal", "valence", "dominance")})
    scaled_manifest = tmp_path / "scaled" / "manifest.csv"
    scaled_manifest.parent.mkdir()
    scaled.reset_index().to_csv(scaled_manifest, index=False)
    assert main(["--runs-dir", str(run.dir.parent), "evaluate", run.run_id, "--corpus", str(scaled_manifest),
                 "--label-range", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "scaled" in out and "labels mapped linearly from 0..1" in out and "[" in out
    assert main(["--runs-dir", str(run.dir.parent), "evaluate", run.run_id]) == 0
    assert "95 % bootstrap intervals" in capsys.readouterr().out
    assert main(["--runs-dir", str(run.dir.parent), "evaluate", run.run_id, "--corpus", str(scaled_manifest)]) == 2
    assert "label" in capsys.readouterr().err  # 0..1 labels refused on the run's 1..7 scale, in words


def test_split_estimates_of_a_stored_run(run):
    table = split_estimates(run.test_predictions(), tiny().model.attributes)
    assert list(table.index.get_level_values("attribute")) == list(tiny().model.attributes)
    assert LabelConfig().minimum == 1.0


def test_speaker_spreads_per_split_and_attribute():
    from core.evaluate.evaluation import speaker_spreads
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    table = pd.DataFrame({"split": ["test"] * 40 + ["test2"] * 20, "speaker": ["a"] * 20 + ["b"] * 20 + ["c"] * 20,
                          "arousal": y, "arousal_predicted": y + np.repeat([0.1, 1.0, 0.3], 20) * rng.normal(size=60)})
    spreads = speaker_spreads(table, ["arousal", "valence"])  # valence is not in the table: left out
    assert list(spreads.index) == [("test", "arousal"), ("test2", "arousal")]
    assert spreads.loc[("test", "arousal"), "speakers"] == 2 and spreads.loc[("test", "arousal"), "worst"].startswith("b (")
    assert speaker_spreads(table.drop(columns="speaker"), ["arousal"]).empty
