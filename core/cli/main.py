"""Command line: `python -m core <command>` (`core/__main__.py` runs `main`); a thin layer over the core package.

Every subcommand is a row of `COMMANDS`: its name, help, arguments and the function that runs it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm import tqdm

from core.cli import arguments, comparing, curating, representing
from core.cli.context import exploration_of, load_run
from core.cli.progress import TrainPrinter, plain_warnings, progress_bar, stage_printer
from core.config import LabelConfig, RunConfig, apply_overrides, preset, toml_overrides
from core.data.corpus_formats import load_corpus
from core.data.extraction import extract_features
from core.data.synthetic import make_demo_corpus
from core.errors import UserError
from core.evaluate.cross_corpus import evaluate_corpora, run_test_predictions, test_estimates
from core.evaluate.evaluation import estimate_text, speaker_spreads, split_estimates
from core.evaluate.uncertainty import MIN_RESAMPLED_SPEAKERS, MIN_SPEAKER_UTTERANCES
from core.explore.exploration import analyze_exploration, project
from core.explore.export import export_exploration
from core.explore.locator import Locator
from core.model.inference import Predictor, expand_audio_paths
from core.model.official import OfficialImportError, find_official_files, import_official
from core.represent.predictor import predictor_of
from core.runtime.distributed import close_world, init_world
from core.runtime.process import keep_freed_memory
from core.store.feature_store import FeatureStore
from core.store.paths import default_cache_dir, default_demo_dir
from core.store.run_store import RunStore
from core.training.ablation import ablation_variants, run_ablation
from core.training.train import TrainingConfigError, train

@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Run one command; under torchrun every rank runs it, and rank 0 alone prints and writes."""
    keep_freed_memory()  # every command runs the CNN pass after pass: `core.runtime.process` says why
    args = build_parser().parse_args(argv)
    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        args.world = init_world(backend=args.dist_backend)  # torchrun's environment, else this process alone
        return args.handler(args)
    except UserError as err:  # what a user can cause and fix: one line and exit code 2, never a traceback
        if os.environ.get("RANK", "0") == "0":  # one line, from rank 0 (or the only process)
            for bar in list(getattr(tqdm, "_instances", ())):  # a progress bar it interrupted ends its line first
                bar.close()
            print(f"error: {err}", file=sys.stderr)
        else:  # torchrun stops every rank once one exits with an error: leave rank 0 (which may still be importing
            time.sleep(10.0)  # under load) the time to say why; its exit ends the job, and this wait, at once
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


# --- commands ------------------------------------------------------------------------------------

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
    run = load_run(args)
    paths = expand_audio_paths(args.inputs)
    if not paths:
        print(f"error: no audio files in {', '.join(map(str, args.inputs))}", file=sys.stderr)
        return 2
    predictor, progress = predictor_of(run, args.device), progress_bar("predicting")
    batches = predictor.predict_batches(paths, progress=progress)
    rows = ((b.chunks if args.chunks else b.utterances.drop(columns="path"), len(b.utterances), b.errors) for b in batches)
    return _write_batches(rows, args.out, len(paths), f"predicted {{}} of {len(paths)} files with run {run.run_id}")


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
                       progress=printer if args.world.is_main else None, world=args.world,
                       allow_speaker_overlap=args.allow_speaker_overlap,
                       allow_duplicate_audio=args.allow_duplicate_audio)
    finally:
        printer.close()
    if not args.world.is_main:
        return 0
    verb = "trained" if result.trained else "loaded existing run"
    print(f"{verb} {result.run.run_id} ({result.run.dir})")
    if result.test_ccc:
        print(f"test {INTERVALS}")
        _print_estimates(test_estimates(result.run))
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
                              workers=args.workers, world=args.world, allow_speaker_overlap=args.allow_speaker_overlap,
                              allow_duplicate_audio=args.allow_duplicate_audio)
    finally:
        printer.close()
    if args.world.is_main:
        for label, run in result.runs.items():
            print(f"\n{label} ({run.run_id}): test {INTERVALS}")
            _print_estimates(test_estimates(run))
        for name, table in result.differences.items():
            print(f"\n{name}: paired difference of test CCC, 95 % bootstrap interval over the same resamples")
            _print_estimates(table)
    return 0


def _evaluate(args) -> int:
    run = load_run(args)
    if args.corpus is None:
        predictions = run_test_predictions(run, args.device)
        print(f"run {run.run_id}, its own test splits: {INTERVALS}")
        _print_estimates(split_estimates(predictions, run.config.model.attributes))
        _print_speaker_spread(predictions, run.config.model.attributes)
        return 0
    label_range = tuple(args.label_range) if args.label_range else None
    labels = LabelConfig(minimum=label_range[0], maximum=label_range[1]) if label_range else run.config.labels
    names = _corpus_names(args.corpus)
    corpora = {name: load_corpus(path, labels=labels) for name, path in names.items()}
    evaluation = evaluate_corpora(run, corpora, {name: str(path) for name, path in names.items()},
                                  label_range=label_range, device=args.device, progress=stage_printer())
    print(f"run {run.run_id} on {len(corpora)} corpora: {INTERVALS}")
    for note in evaluation.notes:
        print(f"note: {note}")
    _print_estimates(evaluation.table)
    return 0


INTERVALS = ("CCC with 95 % bootstrap intervals (1 000 resamples of utterances; also of whole speakers where at least "
             f"{MIN_RESAMPLED_SPEAKERS} are known)")


def _corpus_names(paths: list[Path]) -> dict[str, Path]:
    """A short distinct name per corpus path: its file or folder name (manifest.csv: its folder's)."""
    names: dict[str, Path] = {}
    for path in paths:
        base = path.parent.name if path.name == "manifest.csv" else path.stem
        name, i = base or str(path), 2
        while name in names:
            name, i = f"{base} ({i})", i + 1
        names[name] = path
    return names


def _print_estimates(table: pd.DataFrame) -> None:
    if len(table):
        print(estimate_text(table).reset_index().to_string(index=False))


def _print_speaker_spread(predictions: pd.DataFrame, attributes) -> None:
    """Per split and attribute: the spread of the speakers' own CCCs (speakers with enough test utterances)."""
    for (split, attribute), row in speaker_spreads(predictions, attributes).iterrows():
        print(f"{split} {attribute}: {row.speakers} speakers with >= {MIN_SPEAKER_UTTERANCES} utterances, "
              f"CCC median {row['median']:.3f}, IQR [{row.q1:.3f}, {row.q3:.3f}], worst {row.worst}")


def _analyze(args) -> int:
    if (exploration := exploration_of(args)) is None:
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
    if (exploration := exploration_of(args)) is None:
        return 0
    locator, paths = Locator(exploration, project(exploration)), [str(p) for p in expand_audio_paths(args.clips)]
    return _write_batches(_located_batches(locator, paths, args.neighbours, progress_bar("locating")), args.out,
                          len(paths), f"located {{}} of {len(paths)} files in run {exploration.run.run_id}")


def _located_batches(locator: Locator, paths: list[str], n_neighbours: int, progress, batch_size: int = 16):
    """(rows, files located, errors) of each batch of 16 clips; progress within an hour-long file too."""
    for start in range(0, len(paths), batch_size):
        batch = paths[start: start + batch_size]
        if isinstance(locator.predictor, Predictor):  # (a baseline's vectors report no blocks)
            locator.predictor.on_stream = lambda path, share: progress(round(start + batch.index(path) + share, 2), len(paths))
        located = locator.locate_files(batch, n_neighbours=n_neighbours)
        if len(located.table):  # lists as space-separated text
            located.table["neighbours"] = located.table["neighbours"].map(" ".join)
            located.table["neighbour_distances"] = located.table["neighbour_distances"].map(lambda d: " ".join(map(str, d)))
        yield located.table, len(located.table), located.errors
        progress(start + len(batch), len(paths))


def _export(args) -> int:
    if (exploration := exploration_of(args)) is None:
        return 0
    paths = export_exploration(exploration, analyze_exploration(exploration), project(exploration), args.out, args.format,
                               absolute_paths=args.absolute_paths, annotations=curating.annotations_of(exploration, args))
    for path in paths:
        print(path)
    return 0


def _report(args) -> int:
    from core.report.report import write_report  # here: it imports matplotlib (~0.5 s), which no other command needs
    run = load_run(args)
    if args.out.is_file():
        print(f"error: --out {args.out} is a file: give a folder", file=sys.stderr)
        return 2
    if args.world.is_main:  # under torchrun, rank 0 alone writes
        path = write_report(run, args.out, cache_root=default_cache_dir(), analysis=not args.no_analysis,
                            device=args.device, progress=stage_printer())
        print(f"report of run {run.run_id}: {path} (self-contained; report.md and figures/ beside it)")
    return 0


def _runs(args) -> int:
    runs = RunStore(args.runs_dir).list()
    if not runs:
        print("no runs yet: import the published models (python -m core import-official --from DIR) or train one")
        return 0
    print(pd.DataFrame([{"run": r.run_id, "kind": r.info.kind, "created": r.info.created} for r in runs])
          .to_string(index=False))
    return 0


def _write_batches(batches, out: Path | None, n_files: int, summary: str) -> int:
    """Write (rows, files done, errors) batches to a CSV as they come, then list and count the unreadable files. A kill
    leaves the header and whole rows: each batch is one write(2) (`_append`), which only a SIGKILL inside could cut."""
    try:
        file = open(out, "wb", buffering=0) if out else None  # unbuffered: a batch is on disk when written
    except OSError as err:
        raise UserError(f"cannot write --out {out}: {err.strerror}") from err
    size, done, errors = 0, 0, {}
    try:
        for table, n, batch_errors in batches:
            if not table.columns.empty:  # (locate's table of a batch of unreadable clips has no columns)
                text = table.to_csv(header=size == 0, float_format="%.6f")
                if file is not None:
                    size = _append(file, text.encode(), size, out)
                else:
                    print(text, end="", flush=True)
                    size += len(text)
            done, errors = done + n, errors | batch_errors
    except KeyboardInterrupt:
        print(f"\ninterrupted: the rows of {done} of {n_files} files written so far are complete", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `predict FOLDER | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and Python's last flush of stdout says nothing
        return 0
    finally:
        if file is not None:
            file.close()
    lines = [f"error: {path}: {reason}" for path, reason in errors.items()]  # at the end, where progress cannot hide them
    print("\n".join([*lines, summary.format(done) + (f"; {len(errors)} could not be read" if errors else "")]), file=sys.stderr)
    return 1 if errors else 0


def _append(file, data: bytes, size: int, out: Path) -> int:
    """Append a batch after the `size` bytes written; a write cut short (Ctrl-C, a full disk) is cut back to `size`."""
    view = memoryview(data)
    try:
        while view:
            view = view[file.write(view):]
    except BaseException as err:  # Ctrl-C or a full disk mid-batch: take its partial rows back
        file.truncate(size)
        if isinstance(err, OSError):
            raise UserError(f"cannot write {out}: {err.strerror}; the rows before are complete") from err
        raise
    return size + len(data)


COMMANDS = [
    Command("import-official", "import the authors' published checkpoints as a run", arguments.import_official, _import_official),
    Command("predict", "predict arousal, dominance and valence for audio files or folders", arguments.predict, _predict),
    Command("demo-corpus", "generate the built-in demo corpus (synthesised speech)", arguments.demo_corpus, _demo_corpus),
    Command("extract", "extract and cache mel features of a corpus (parallel, incremental)", arguments.extract, _extract),
    Command("train", "train (or load, or resume) a DeepEmoCluster run on a corpus", arguments.train, _train),
    Command("ablation", "train with and without the unlabelled stage; the paired difference of test CCC", arguments.ablation, _ablation),
    Command("evaluate", "test CCC with 95 %% intervals: the run's own test splits, or other corpora", arguments.evaluate, _evaluate),
    Command("analyze", "cluster-emotion dependence of a run's latent space (and its map)", arguments.analyze, _analyze),
    Command("locate", "place clips in a run's latent space: attributes, cluster, map, neighbours", arguments.locate,
            _locate),
    Command("export", "write the cluster-emotion, utterance and embedding tables", arguments.export, _export),
    Command("suspects", "rank the labels most likely wrong: far from their neighbours' in the latent space and from "
            "the prediction", arguments.suspects, curating.suspects),
    Command("export-corpus", "write the corpus with its curation applied (edited labels, unusable clips out) as a CSV "
            "manifest to train on, and its edits log", arguments.export_corpus, curating.export_corpus),
    Command("compare", "two or more runs over one corpus: their clusters' dependence on emotion beside shuffled "
            "clusters and each other (paired bootstrap intervals), and test CCC", arguments.compare, comparing.compare),
    Command("baseline", "make an acoustic baseline of a corpus a run (eGeMAPS or log-mel statistics: standardised, "
            "K-means, ridge regression), to compare a trained run with", representing.baseline_arguments,
            representing.baseline),
    Command("import-embeddings", "make another model's embeddings of a corpus a run (clusters, ridge regression, "
            "test CCC), to explore and compare", representing.embeddings_arguments, representing.import_embeddings),
    Command("report", "write a shareable report of a run (one self-contained HTML page, and Markdown)",
            arguments.report, _report),
    Command("runs", "list the runs in the store", lambda p: None, _runs),
]
