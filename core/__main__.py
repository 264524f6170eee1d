"""Command line: `python -m core <command>`; a thin layer over the core package.

Every subcommand is a row of `COMMANDS`: its name, help, arguments and the function that runs it.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from core.ablation import ablation_variants, ccc_table, run_ablation
from core.atomic import CorruptFileError
from core.audio import AudioLoadingError
from core.config import RunConfig, apply_overrides, preset, toml_overrides
from core.distributed import DistributedError, close_world, init_world
from core.explore import ExploreError, Locator, analyze_exploration, explore, project
from core.export import export_exploration
from core.extraction import CorpusAudioError, extract_features
from core.feature_store import FeatureStore
from core.inference import Predictor, evaluate_corpus, expand_audio_paths
from core.manifest import ManifestError, load_corpus
from core.official import OfficialImportError, find_official_files, import_official
from core.paths import default_cache_dir, default_demo_dir
from core.progress import TrainPrinter, progress_bar, stage_printer
from core.run_store import Run, RunLockedError, RunNotFoundError, RunStore
from core.runtime import keep_freed_memory
from core.synthetic import make_demo_corpus
from core.train import TrainingConfigError, train

# what a user can cause and fix: a one-line message and exit code 2, never a traceback
EXPECTED_ERRORS = (ManifestError, CorpusAudioError, OfficialImportError, RunNotFoundError, AudioLoadingError,
                   TrainingConfigError, RunLockedError, ExploreError, CorruptFileError, DistributedError)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Run one command; under torchrun every rank runs it, and rank 0 alone prints and writes."""
    keep_freed_memory()  # every command runs the CNN pass after pass: `core.runtime` says why
    args = build_parser().parse_args(argv)
    try:
        args.world = init_world(backend=args.dist_backend)  # torchrun's environment, else this process alone
        return args.handler(args)
    except EXPECTED_ERRORS as err:
        if os.environ.get("RANK", "0") == "0":  # one line, from rank 0 (or the only process)
            print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every finished epoch is saved; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if getattr(args, "world", None) is not None:
            close_world(args.world)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=(
        "DeepEmoCluster Explorer: semi-supervised speech-emotion models (Lin, Sridhar & Busso, ICASSP 2021)."))
    parser.add_argument("--runs-dir", type=Path, default=None, help="run store (default: $SER_RUNS_DIR or data/runs)")
    parser.add_argument("--dist-backend", choices=["auto", "gloo", "nccl"], default="auto",
                        help="under torchrun: NCCL on GPUs, gloo on CPUs (default: auto)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = commands.add_parser(command.name, help=command.help)
        command.arguments(p)
        p.set_defaults(handler=command.run)
    return parser


# --- arguments -----------------------------------------------------------------------------------

def _import_arguments(p) -> None:
    p.add_argument("--arousal", type=Path, help="*_Act.pth.tar")
    p.add_argument("--dominance", type=Path, help="*_Dom.pth.tar")
    p.add_argument("--valence", type=Path, help="*_Val.pth.tar")
    p.add_argument("--norm-terms", type=Path, help="folder with feat/act/dom/val_norm_{means,stds}.mat")
    p.add_argument("--from", dest="source", type=Path, help="a folder holding all of the above (found by name)")


def _predict_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="audio files and/or folders (searched recursively)")
    p.add_argument("--run", help="run id (default: the newest run in the store)")
    p.add_argument("--out", type=Path, help="write the CSV here instead of stdout")
    p.add_argument("--chunks", action="store_true", help="one row per chunk instead of per clip")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _demo_arguments(p) -> None:
    p.add_argument("--out", type=Path, default=None, help="folder (default: data/demo)")
    p.add_argument("--seed", type=int, default=0)


def _extract_arguments(p) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core for large corpora)")
    p.add_argument("--skip-unreadable", action="store_true", help="warn about unreadable files instead of failing")


def _corpus_arguments(p) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--preset", default="default", help="default, demo, tiny, paper or paper-<attribute>")
    p.add_argument("--config", type=Path, help="TOML file of overrides ([train] epochs = 3 ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--workers", type=int, default=None, help="feature-extraction processes")


def _train_arguments(p) -> None:
    _corpus_arguments(p)
    p.add_argument("--force", action="store_true", help="retrain even if this run exists")


def _ablation_arguments(p) -> None:
    _corpus_arguments(p)
    p.add_argument("--with-frozen-regressor", action="store_true",
                   help="also train both with train.freeze_regressor=true (the released code's behaviour)")


def _evaluate_arguments(p) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--corpus", type=Path, help="evaluate on this corpus's test splits instead of the stored metrics")
    p.add_argument("--device", default="auto")


def _explore_arguments(p) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--corpus", type=Path, help="explore this corpus (default: the run's own; required for imported models)")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips for --corpus")
    p.add_argument("--network", help="imported models: arousal, valence or dominance (default: arousal)")


def _analyze_arguments(p) -> None:
    _explore_arguments(p)
    p.add_argument("--split", action="append", help="only these splits (repeatable; default: all)")
    p.add_argument("--shuffles", type=int, default=20, help="shuffled-cluster baselines")
    p.add_argument("--no-map", action="store_true", help="skip fitting the UMAP map")


def _locate_arguments(p) -> None:
    _explore_arguments(p)
    p.add_argument("clips", nargs="+", type=Path, help="audio files and/or folders")
    p.add_argument("--neighbours", type=int, default=5)
    p.add_argument("--out", type=Path, help="write the CSV here instead of stdout")


def _export_arguments(p) -> None:
    _explore_arguments(p)
    p.add_argument("--format", choices=["csv", "parquet", "json"], default="csv")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--absolute-paths", action="store_true",
                   help="audio paths as stored (default: relative to the corpus folder, so the tables can be shared)")


# --- commands ------------------------------------------------------------------------------------

def _load_run(args) -> Run:
    """The run the command names (`run` or `--run`), else the newest one."""
    return RunStore(args.runs_dir).get(getattr(args, "run", None))


def _import_official(args) -> int:
    if args.source:
        files = find_official_files(args.source)
        checkpoints, norm_dir = files.checkpoints, files.norm_dir
    else:
        given = {"arousal": args.arousal, "dominance": args.dominance, "valence": args.valence}
        if None in given.values() or args.norm_terms is None:
            raise OfficialImportError("give --from FOLDER, or all of --arousal, --dominance, --valence and --norm-terms")
        checkpoints, norm_dir = given, args.norm_terms
    run = import_official(checkpoints, norm_dir, RunStore(args.runs_dir))
    print(f"imported run {run.run_id} into {run.dir.parent}")
    return 0


def _predict(args) -> int:
    run = _load_run(args)
    paths = expand_audio_paths(args.inputs)
    if not paths:
        print(f"error: no audio files in {', '.join(map(str, args.inputs))}", file=sys.stderr)
        return 2
    result = Predictor.from_run(run, args.device).predict_files(paths)
    table = result.chunks if args.chunks else result.utterances.drop(columns="path")
    _write_csv(table, args.out)
    for path, reason in result.errors.items():
        print(f"error: {path}: {reason}", file=sys.stderr)
    print(f"predicted {len(result.utterances)} of {len(paths)} files with run {run.run_id}", file=sys.stderr)
    return 1 if result.errors else 0


def _demo_corpus(args) -> int:
    manifest = make_demo_corpus(args.out or default_demo_dir(), seed=args.seed, progress=progress_bar("synthesising"))
    print(f"demo corpus: {manifest}")
    return 0


def _extract(args) -> int:
    cfg = RunConfig()
    table = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=cfg.labels)
    store = FeatureStore(default_cache_dir(), cfg.audio, cfg.features, cfg.chunks)
    result = extract_features(table, store, cfg.audio, cfg.features, cfg.chunks, workers=args.workers,
                              skip_unreadable=args.skip_unreadable, world=args.world,
                              progress=progress_bar("extracting") if args.world.is_main else None)
    if not args.world.is_main:
        return 0
    feats, stats = result.features, result.stats
    print(f"{len(feats.files)} utterances, {len(feats.frames)} frames; extracted {stats.n_extracted} new files "
          f"({stats.audio_seconds:.0f} s of audio) in {stats.seconds:.1f} s, real-time factor {stats.real_time_factor:.4f}")
    return 0


def _config(args) -> RunConfig:
    try:
        cfg = preset(args.preset)
        if args.config:
            cfg = apply_overrides(cfg, toml_overrides(args.config))
        return apply_overrides(cfg, args.overrides)
    except (ValueError, OSError) as err:  # bad preset, override or TOML file: nothing has started
        raise TrainingConfigError(str(err)) from err


def _train(args) -> int:
    cfg = _config(args)
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=cfg.labels)
    printer = TrainPrinter()
    try:
        result = train(cfg, corpus, RunStore(args.runs_dir), default_cache_dir(), force=args.force, workers=args.workers,
                       progress=printer if args.world.is_main else None, world=args.world)
    finally:
        printer.close()
    if not args.world.is_main:
        return 0
    verb = "trained" if result.trained else "loaded existing run"
    print(f"{verb} {result.run.run_id} ({result.run.dir})")
    _print_ccc(ccc_table({result.run.run_id: result.test_ccc}))
    return 0


def _ablation(args) -> int:
    base = _config(args)
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=base.labels)
    printer, announced = TrainPrinter(), set()

    def report(label, progress) -> None:
        if label not in announced:
            announced.add(label)
            print(f"== {label}", file=sys.stderr)
        printer(progress)
    try:
        result = run_ablation(ablation_variants(base, with_frozen_regressor=args.with_frozen_regressor), corpus,
                              RunStore(args.runs_dir), default_cache_dir(), progress=report if args.world.is_main else None,
                              workers=args.workers, world=args.world)
    finally:
        printer.close()
    if args.world.is_main:
        _print_ccc(result.test_ccc)
    return 0


def _evaluate(args) -> int:
    run = _load_run(args)
    if args.corpus is None:
        metrics = run.metrics()
        if metrics is None:
            print(f"error: run {run.run_id} has no stored test metrics; give --corpus", file=sys.stderr)
            return 2
        _print_ccc(ccc_table({run.run_id: metrics.test_ccc}))
        return 0
    corpus = load_corpus(args.corpus, labels=run.config.labels)
    _print_ccc(ccc_table({run.run_id: evaluate_corpus(Predictor.from_run(run, args.device), corpus)}))
    return 0


def _print_ccc(table: pd.DataFrame) -> None:
    if len(table):
        print(table.reset_index().to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _exploration(args):
    """The exploration the command works on; under torchrun the ranks share its embedding pass, and only
    rank 0 goes on with the result (the others get None)."""
    run = _load_run(args)
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=run.config.labels) if args.corpus else None
    world = args.world
    exploration = explore(run, corpus, network=args.network, world=world,
                          progress=stage_printer() if world.is_main else None)
    return exploration if world.is_main else None


def _analyze(args) -> int:
    if (exploration := _exploration(args)) is None:
        return 0
    report = analyze_exploration(exploration, args.split, args.shuffles)
    latent = exploration.latent
    print(f"run {exploration.run.run_id}, network {exploration.network}: {len(latent.files)} utterances, "
          f"{len(latent.centroids)} clusters (centroids: {latent.centroid_source})")
    print("\ndependence of clusters on each attribute (observed vs shuffled clusters, mean ± std):")
    table = report.dependence.copy()
    table["epsilon2 (shuffled)"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(table.shuffled_epsilon2_mean, table.shuffled_epsilon2_std)]
    table["MI (shuffled)"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(table.shuffled_mi_mean, table.shuffled_mi_std)]
    print(table[["n", "kruskal_h", "p_value", "epsilon2", "epsilon2 (shuffled)", "mutual_info", "MI (shuffled)"]]
          .to_string(float_format=lambda v: f"{v:.4g}"))
    if report.categorical:
        print("\ncategorical emotion vs cluster: " + ", ".join(f"{k} {v:.4g}" for k, v in report.categorical.items()))
    means = [c for c in report.per_cluster.columns if c.endswith("_mean")]
    print("\nper cluster:\n" + report.per_cluster[["size", "share", *means]].to_string(float_format=lambda v: f"{v:.3f}"))
    if not args.no_map:
        project(exploration)
        print(f"\nmap cached in {exploration.folder / 'projections'}")
    return 0


def _locate(args) -> int:
    if (exploration := _exploration(args)) is None:
        return 0
    locator = Locator(exploration, project(exploration))
    located = locator.locate_files(expand_audio_paths(args.clips), n_neighbours=args.neighbours)
    table, errors = located.table, located.errors
    if len(table):
        table["neighbours"] = table["neighbours"].map(" ".join)
        table["neighbour_distances"] = table["neighbour_distances"].map(lambda d: " ".join(map(str, d)))
        _write_csv(table, args.out)
    for path, reason in errors.items():
        print(f"error: {path}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def _export(args) -> int:
    if (exploration := _exploration(args)) is None:
        return 0
    paths = export_exploration(exploration, analyze_exploration(exploration), project(exploration), args.out, args.format,
                               absolute_paths=args.absolute_paths)
    for path in paths:
        print(path)
    return 0


def _runs(args) -> int:
    runs = RunStore(args.runs_dir).list()
    if not runs:
        print("no runs yet: import the published models (python -m core import-official --from DIR) or train one")
        return 0
    print(pd.DataFrame([{"run": r.run_id, "kind": r.info.kind, "created": r.info.created} for r in runs])
          .to_string(index=False))
    return 0


def _write_csv(table: pd.DataFrame, out: Path | None) -> None:
    csv = table.to_csv(float_format="%.6f")
    if out:
        out.write_text(csv)
    else:
        sys.stdout.write(csv)


COMMANDS = [
    Command("import-official", "import the authors' published checkpoints as a run", _import_arguments, _import_official),
    Command("predict", "predict arousal, dominance and valence for audio files or folders", _predict_arguments, _predict),
    Command("demo-corpus", "generate the built-in demo corpus (synthesised speech)", _demo_arguments, _demo_corpus),
    Command("extract", "extract and cache mel features of a corpus (parallel, incremental)", _extract_arguments, _extract),
    Command("train", "train (or load, or resume) a DeepEmoCluster run on a corpus", _train_arguments, _train),
    Command("ablation", "train with and without the unlabelled stage; compare test CCC", _ablation_arguments, _ablation),
    Command("evaluate", "test CCC of a run (stored, or on a corpus's test splits)", _evaluate_arguments, _evaluate),
    Command("analyze", "cluster-emotion dependence of a run's latent space (and its map)", _analyze_arguments, _analyze),
    Command("locate", "place clips in a run's latent space: attributes, cluster, map, neighbours", _locate_arguments,
            _locate),
    Command("export", "write the cluster-emotion, utterance and embedding tables", _export_arguments, _export),
    Command("runs", "list the runs in the store", lambda p: None, _runs),
]

if __name__ == "__main__":
    sys.exit(main())
