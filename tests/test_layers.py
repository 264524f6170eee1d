"""The shape of the code, enforced: every import points down a written layering, and no module passes 400 lines.

core/ is packages by concept; the layering orders them, once, here. A module may import any module of its own
package (inside a package modules are free) and modules of packages in strictly lower layers (so there can be
no circle between packages); a new package or top-level module must be placed in a layer before it can be
imported anywhere. app/ and benchmarks/ are layered the same way, module by module.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400  # STYLE rule 4: one concept per module

CORE_LAYERS = [
    ["_lazy", "config", "errors"],  # lazy re-exports; every setting of a run; the base class of a user's errors
    ["store"],  # atomic writes, feature and run stores, analysis and evaluation stores, and their data types: no torch
    ["runtime"],  # the device, torch.distributed ranks, process memory settings
    ["audio"],  # decoding, mel features, files to features
    ["data"],  # corpora, split hygiene, the demo corpus, extraction, chunk sets, the loader
    ["model"],  # the CNN, bundle, forward path, losses, K-means, metrics, inference, the published models
    ["represent"],  # other representations as runs: acoustic baselines, imported embeddings
    ["explore"],  # a run's latent space, map, clusters against emotions, new clips located, exports
    ["curate"],  # a person's corrections of a corpus: edits, their log's state, the corrected corpus
    ["evaluate"],  # test CCC with intervals, on a run's own splits or other corpora
    ["training"],  # the DeepCluster loop, its checks and data, the live map's space, ablations
    ["report"],  # a shareable report of one run
    ["cli"],  # the command line
    ["__init__", "__main__"],  # the public names; `python -m core`
]
APP_LAYERS = [["__init__", "figures", "trainer", "warm_up"], ["loaders", "trainings"],
              ["scatter", "inspector", "curation", "representations"],
              ["widgets", "tagging"], ["streamlit_app", "app_pages"]]
BENCHMARK_LAYERS = [["machine", "browser", "inputs", "server", "synthetic_store"], ["results", "synthetic_run"], ["memory"],
                    ["corpus", "embedding", "latency", "projection", "training", "app", "map", "scale_training",
                     "uncertainty", "recipe_study", "suspects", "long_inputs"], ["app_session", "scale"], ["soak"], ["sessions"],
                    ["__init__", "__main__"]]


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _name(path: Path, package: str) -> str:
    """`core/training/train.py` -> "train"; `app/app_pages/runs.py` -> "app_pages" (pages share one layer)."""
    return path.relative_to(REPO / package).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module path this file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module.count(".") <= 1:  # `from core.store import atomic` imports the module core.store.atomic
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _violations(package: str, layers: list[list[str]]) -> list[str]:
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    problems = []
    for path in _modules(package):
        here = _name(path, package)
        if here not in rank:
            problems.append(f"{path.relative_to(REPO)} is in no layer of tests/test_layers.py")
            continue
        for target in sorted(_imports(path)):
            parts = target.split(".")
            if parts[0] != package or len(parts) < 2 or parts[1] not in rank:
                continue
            if parts[1] != here and rank[parts[1]] >= rank[here]:
                problems.append(f"{path.relative_to(REPO)} imports {target}: layer {rank[parts[1]]} is not below {rank[here]}")
    return problems


@pytest.mark.parametrize("package,layers", [("core", CORE_LAYERS), ("app", APP_LAYERS), ("benchmarks", BENCHMARK_LAYERS)])
def test_layers_every_import_points_down(package, layers):
    assert _violations(package, layers) == []


def test_layers_a_circle_or_upward_import_is_caught(tmp_path, monkeypatch):
    """The check itself can fail: an upward import (storage importing training) is reported; imports inside a
    package are free."""
    for package in ("store", "training"):
        (tmp_path / "core" / package).mkdir(parents=True)
    (tmp_path / "core" / "store" / "run_store.py").write_text("from core.training.train import train\n"
                                                              "from core.store import atomic\n")
    (tmp_path / "core" / "training" / "train.py").write_text("import core.store.run_store\nfrom core.training import checks\n")
    monkeypatch.setattr("tests.test_layers.REPO", tmp_path)
    training = next(i for i, layer in enumerate(CORE_LAYERS) if "training" in layer)
    assert _violations("core", CORE_LAYERS) == [f"core/store/run_store.py imports core.training.train: layer {training} is not below 1"]


def test_importing_the_store_imports_no_torch_nor_any_compute_package():
    """Storage knows data types, not compute (issue 30): the run store, the feature store, the analysis and
    evaluation stores and their types import neither torch nor scikit-learn nor another core package."""
    script = ("import sys, core.store, core.store.run_store, core.store.feature_store, core.store.analysis_store, "
              "core.store.evaluation_store, core.store.checkpoint, core.store.latent\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sklearn', 'umap') or "
              "(m.startswith('core.') and m.split('.')[1] not in ('store', 'config', 'errors', '_lazy'))))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_layers_core_and_app_stay_apart():
    """core/ never imports the app, Streamlit, a browser driver or the benchmarks (STYLE §6)."""
    for path in _modules("core"):
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not roots & {"app", "streamlit", "playwright", "benchmarks"}, path
    for path in _modules("benchmarks") + _modules("app"):
        assert "core.store" not in _imports(path), path


@pytest.mark.parametrize("package", ["core", "app", "benchmarks"])
def test_layers_no_module_over_400_lines(package):
    long = {str(p.relative_to(REPO)): n for p in _modules(package) if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
