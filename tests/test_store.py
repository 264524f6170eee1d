import json
import os

import numpy as np
import pytest
import torch

from core.config import ModelConfig, RunConfig
from core.model import EmotionCNN
from core.store import (ModelBundle, Normalisation, RunNotFoundError, RunStore, atomic_write_bytes, load_bundle,
                        save_bundle)


def _bundle():
    torch.manual_seed(0)
    nets = {"joint": EmotionCNN(ModelConfig(n_clusters=4)).eval()}
    norm = Normalisation(np.arange(128.0), np.ones(128), {"arousal": 4.0, "valence": 4.1, "dominance": 4.2},
                         {"arousal": 1.0, "valence": 0.9, "dominance": 0.8})
    return ModelBundle(nets, norm, RunConfig(name="t"))


def test_bundle_round_trip_gives_identical_outputs(tmp_path):
    bundle = _bundle()
    save_bundle(tmp_path / "model.pt", bundle)
    torch.load(tmp_path / "model.pt", weights_only=True)  # must not need pickled classes
    again = load_bundle(tmp_path / "model.pt")
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
    run = store.save_complete("r1", {"kind": "test", "config": RunConfig().to_dict()}, _bundle())
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text(json.dumps({"run_id": "half"}))
    assert [r.run_id for r in store.list()] == ["r1"] and store.latest().run_id == "r1"
    assert run.config == RunConfig()
    with pytest.raises(RunNotFoundError, match="no completed run 'half'.*available: \\['r1'\\]"):
        store.load("half")


def test_run_store_empty_latest_says_how_to_start(tmp_path):
    with pytest.raises(RunNotFoundError, match="import-official"):
        RunStore(tmp_path / "none").latest()
