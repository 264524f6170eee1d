"""The command line's arguments: one function per `python -m core` command that adds its options to its
subparser (`core.cli.main.COMMANDS` pairs each with the function that runs the command)."""
from __future__ import annotations

import argparse
from pathlib import Path

def import_official(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arousal", type=Path, help="*_Act.pth.tar")
    p.add_argument("--dominance", type=Path, help="*_Dom.pth.tar")
    p.add_argument("--valence", type=Path, help="*_Val.pth.tar")
    p.add_argument("--norm-terms", type=Path, help="folder with feat/act/dom/val_norm_{means,stds}.mat")
    p.add_argument("--from", dest="source", type=Path, help="a folder holding all of the above (found by name)")


def predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="audio files and/or folders (searched recursively)")
    p.add_argument("--run", help="run id (default: the newest run in the store)")
    p.add_argument("--out", type=Path, help="write the CSV here instead of stdout (rows are written as they are "
                   "predicted, 16 clips at a time: an interrupted run keeps those, each row whole)")
    p.add_argument("--chunks", action="store_true", help="one row per chunk instead of per clip")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def demo_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="folder (default: data/demo)")
    p.add_argument("--seed", type=int, default=0)


def extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core for large corpora)")
    p.add_argument("--skip-unreadable", action="store_true", help="warn about unreadable files instead of failing")


def corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--preset", default="default", help="default, demo, tiny, paper or paper-<attribute>")
    p.add_argument("--config", type=Path, help="TOML file of overrides ([train] epochs = 3 ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--workers", type=int, default=None, help="feature-extraction processes")
    p.add_argument("--allow-speaker-overlap", action="store_true",
                   help="train even if train speakers also speak in dev/test (the run records it)")
    p.add_argument("--allow-duplicate-audio", action="store_true",
                   help="train even if dev/test clips are byte-identical to train/unlabelled ones (recorded)")


def train(p: argparse.ArgumentParser) -> None:
    corpus(p)
    p.add_argument("--force", action="store_true", help="retrain even if this run exists")


def ablation(p: argparse.ArgumentParser) -> None:
    corpus(p)
    p.add_argument("--with-frozen-regressor", action="store_true",
                   help="also train both with train.freeze_regressor=true (the released code's behaviour)")


def evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--corpus", type=Path, nargs="+", metavar="PATH",
                   help="evaluate on these corpora's test splits (all labelled rows where a corpus has none) "
                        "instead of the run's own test splits")
    p.add_argument("--label-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="the corpora's label scale where it is not the run's (mapped linearly onto it)")
    p.add_argument("--device", default="auto")


def explore(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--corpus", type=Path, help="explore this corpus (default: the run's own; required for imported models)")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips for --corpus")
    p.add_argument("--network", help="imported models: arousal, valence or dominance (default: arousal)")


def analyze(p: argparse.ArgumentParser) -> None:
    explore(p)
    p.add_argument("--split", action="append", help="only these splits (repeatable; default: all)")
    p.add_argument("--shuffles", type=int, default=20, help="shuffled-cluster baselines")
    p.add_argument("--no-map", action="store_true", help="skip fitting the UMAP map")


def locate(p: argparse.ArgumentParser) -> None:
    explore(p)
    p.add_argument("clips", nargs="+", type=Path, help="audio files and/or folders")
    p.add_argument("--neighbours", type=int, default=5)
    p.add_argument("--out", type=Path, help="write the CSV here instead of stdout (rows are written as they are "
                   "located, 16 clips at a time: an interrupted run keeps those, each row whole)")


def export(p: argparse.ArgumentParser) -> None:
    explore(p)
    p.add_argument("--format", choices=["csv", "parquet", "json"], default="csv")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--absolute-paths", action="store_true",
                   help="audio paths as stored (default: relative to the corpus folder, as the `file` keys are, "
                        "so the tables can be shared)")


def suspects(p: argparse.ArgumentParser) -> None:
    explore(p)
    p.add_argument("--attribute", choices=["arousal", "valence", "dominance"], help="only this attribute (default: all)")
    p.add_argument("--top", type=int, help="only the N most suspicious labels of each attribute (default: every one)")
    p.add_argument("--out", type=Path, required=True, help="the ranking as a CSV file")


def report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.html, report.md and figures/")
    p.add_argument("--no-analysis", action="store_true",
                   help="leave out the cluster-emotion section (it embeds the corpus: minutes for large ones)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def export_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run id whose corpus to correct (default: the newest run)")
    p.add_argument("--corpus", type=Path, help="correct this corpus instead (the edits are kept per corpus)")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips for --corpus")
    p.add_argument("--out", type=Path, required=True, help="the corrected manifest (.csv); the edits log goes beside it")
    p.add_argument("--unusable", choices=["drop", "unlabelled"], default="drop",
                   help="clips marked unusable: left out (default) or kept as unlabelled audio")


def compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids over one corpus (the first one's labels "
                   "are judged; differences are earlier minus later runs)")
    p.add_argument("--out", type=Path, required=True, help="folder for dependence.csv, differences.csv and test_ccc.csv")
    p.add_argument("--corpus", type=Path, help="explore every run over this corpus (default: each run's own; imported "
                   "models: the built-in demo corpus)")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips for --corpus")
    p.add_argument("--shuffles", type=int, default=20, help="shuffled-cluster baselines")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of utterances")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
