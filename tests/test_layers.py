"""The shape of the code, enforced: every import points down a written layering, and no module passes 400 lines.

The layering is written down here, once. A module may import only modules of strictly lower layers (so
there can be no circle); a new module must be placed in a layer before it can be imported anywhere.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400  # STYLE rule 4: one concept per module

CORE_LAYERS = [
    ["config", "runtime", "paths", "atomic", "palette"],  # settings, process options, default folders, atomic writes
    # + checksums, the figures' colours
    ["audio", "features", "metrics", "analysis", "projection", "agreement", "cluster_words", "novelty", "run_info"],
    # pure: decoding, mel maths, CCC, statistics, UMAP, two clusterings compared, clusters in words, out of
    # distribution, what a run is
    ["frontend", "manifest"],  # files -> features; corpora -> utterance tables
    ["dataset", "model", "clustering", "synthetic", "split_hygiene", "uncertainty"],  # chunks and model input; the
    # CNN; K-means; the demo corpus; speakers and audio shared between splits; bootstrap intervals of a CCC
    ["bundle", "distributed", "train_checks", "loader"],  # networks + normalisation; many processes; what can be
                                                          # trained; inputs gathered ahead
    ["forward", "objective"],  # the one forward path; the losses of one batch
    ["augmentation"],  # the recipe's chunk masks and learning-rate schedule (masks a batch of `objective`)
    ["latent", "evaluation"],  # a corpus's latent space; labelled chunk sets -> predictions and their CCC
    ["feature_store", "run_store", "analysis_store", "evaluation_store"],  # storage: imports the data types above,
    # never the reverse
    ["extraction"],  # audio -> feature store, in parallel
    ["training_data", "epoch_space", "embedding"],  # what a run trains on; the space an epoch clustered (a live
    # map); a run's latent space computed over a corpus
    ["train", "inference"],  # the DeepCluster loop; new audio through a stored run
    ["explore", "official", "cross_corpus"],  # latent space of a run + map, cached; the published models; a run
    # evaluated on corpora
    ["export", "progress", "ablation", "report_document", "report_figures", "locator"],  # tables of an exploration;
    # the CLI's terminal progress; ablations; a report as HTML and Markdown; its figures; new clips located
    ["report", "cli_arguments"],  # a shareable report of one run; the command line's options
    ["__init__", "__main__"],  # the public names; the CLI
]
APP_LAYERS = [["__init__", "figures", "trainer"], ["loaders"], ["scatter", "inspector"], ["widgets"], ["streamlit_app", "app_pages"]]
BENCHMARK_LAYERS = [["machine", "browser", "inputs", "server", "synthetic_store"], ["results", "synthetic_run"], ["memory"],
                    ["corpus", "embedding", "latency", "projection", "training", "app", "map", "scale_training",
                     "uncertainty", "recipe_study"], ["scale"],
                    ["__init__", "__main__"]]


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _name(path: Path, package: str) -> str:
    """`core/train.py` -> "train"; `app/app_pages/runs.py` -> "app_pages" (pages share one layer)."""
    return path.relative_to(REPO / package).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module path this file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if "." not in node.module:  # `from core import atomic` imports the module core.atomic
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
            if rank[parts[1]] >= rank[here]:
                problems.append(f"{path.relative_to(REPO)} imports {target}: layer {rank[parts[1]]} is not below {rank[here]}")
    return problems


@pytest.mark.parametrize("package,layers", [("core", CORE_LAYERS), ("app", APP_LAYERS), ("benchmarks", BENCHMARK_LAYERS)])
def test_layers_every_import_points_down(package, layers):
    assert _violations(package, layers) == []


def test_layers_a_circle_or_upward_import_is_caught(tmp_path, monkeypatch):
    """The check itself can fail: an upward import (storage importing training) is reported."""
    fake = tmp_path / "core"
    fake.mkdir()
    (fake / "run_store.py").write_text("from core.train import train\n")
    (fake / "train.py").write_text("import core.run_store\n")
    monkeypatch.setattr("tests.test_layers.REPO", tmp_path)
    assert _violations("core", CORE_LAYERS) == ["core/run_store.py imports core.train: layer 11 is not below 8"]


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
