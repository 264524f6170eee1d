"""The ablation variants and the rule that pairs a run with its SSL-ablation partner (core/training/ablation.py)."""
from core.config import tiny
from core.store.run_store import RunStore
from core.training.ablation import ablation_partner, ablation_variants, ccc_table


def test_ablation_variants_flip_the_unlabelled_stage_and_optionally_the_regressor():
    variants = ablation_variants(tiny())
    assert [v.label for v in variants] == ["with unlabelled", "labelled only"]
    assert [v.config.train.use_unlabelled for v in variants] == [True, False]
    both = ablation_variants(tiny(), with_frozen_regressor=True)
    assert [(v.config.train.use_unlabelled, v.config.train.freeze_regressor) for v in both] == [
        (True, False), (False, False), (True, True), (False, True)]
    assert both[2].label == "with unlabelled, frozen regressor"


def test_ablation_partner_is_the_same_run_without_the_unlabelled_stage(app_data):
    runs = RunStore(app_data / "runs").list()
    with_ssl = next(r for r in runs if r.config.train.use_unlabelled)
    without = next(r for r in runs if not r.config.train.use_unlabelled)
    assert ablation_partner(with_ssl, runs).run_id == without.run_id
    assert ablation_partner(without, runs).run_id == with_ssl.run_id
    assert ablation_partner(with_ssl, [with_ssl]) is None


def test_ccc_table_is_indexed_by_run_and_split():
    table = ccc_table({"a": {"test": {"arousal": 0.5}}, "b": {"test": {"arousal": 0.25}, "test2": {"arousal": 0.1}}})
    assert list(table.index) == [("a", "test"), ("b", "test"), ("b", "test2")]
    assert table.loc[("b", "test2"), "arousal"] == 0.1


def test_run_ablation_passes_the_split_hygiene_flags_to_every_training(monkeypatch, tmp_path):
    import core.training.ablation
    from core.training.train import TrainResult
    calls = []

    def fake_train(cfg, corpus, runs, cache_root, **kwargs):
        calls.append(kwargs)
        return TrainResult(run=None, history=None, test_ccc={"test": {"arousal": 0.5}}, trained=True)
    monkeypatch.setattr(core.training.ablation, "train", fake_train)
    variants = ablation_variants(tiny(), with_frozen_regressor=True)[::2]  # no with/without pair: nothing to compare
    core.training.ablation.run_ablation(variants, None, RunStore(tmp_path), tmp_path, allow_speaker_overlap=True)
    assert [(c["allow_speaker_overlap"], c["allow_duplicate_audio"]) for c in calls] == [(True, False), (True, False)]
