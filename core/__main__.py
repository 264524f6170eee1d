"""Command line: `python -m core <command>`; a thin layer over the core package."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description=(
        "DeepEmoCluster Explorer: semi-supervised speech-emotion models (Lin, Sridhar & Busso, ICASSP 2021)."))
    parser.add_argument("--runs-dir", type=Path, default=None, help="run store (default: $SER_RUNS_DIR or data/runs)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("import-official", help="import the authors' published checkpoints as a run")
    p.add_argument("--arousal", type=Path, help="*_Act.pth.tar")
    p.add_argument("--dominance", type=Path, help="*_Dom.pth.tar")
    p.add_argument("--valence", type=Path, help="*_Val.pth.tar")
    p.add_argument("--norm-terms", type=Path, help="folder with feat/act/dom/val_norm_{means,stds}.mat")
    p.add_argument("--from", dest="source", type=Path, help="a folder holding all of the above (found by name)")
    p.set_defaults(func=_import_official)

    p = commands.add_parser("predict", help="predict arousal, dominance and valence for audio files or folders")
    p.add_argument("inputs", nargs="+", type=Path, help="audio files and/or folders (searched recursively)")
    p.add_argument("--run", help="run id (default: the newest run in the store)")
    p.add_argument("--out", type=Path, help="write the CSV here instead of stdout")
    p.add_argument("--chunks", action="store_true", help="one row per chunk instead of per clip")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=_predict)

    p = commands.add_parser("demo-corpus", help="generate the built-in demo corpus (synthesised speech)")
    p.add_argument("--out", type=Path, default=None, help="folder (default: data/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo_corpus)

    p = commands.add_parser("extract", help="extract and cache mel features of a corpus (parallel, incremental)")
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core for large corpora)")
    p.add_argument("--skip-unreadable", action="store_true", help="warn about unreadable files instead of failing")
    p.set_defaults(func=_extract)

    p = commands.add_parser("train", help="train (or load, or resume) a DeepEmoCluster run on a corpus")
    _corpus_arguments(p)
    p.add_argument("--force", action="store_true", help="retrain even if this run exists")
    p.set_defaults(func=_train)

    p = commands.add_parser("ablation", help="train with and without the unlabelled stage; compare test CCC")
    _corpus_arguments(p)
    p.add_argument("--with-frozen-regressor", action="store_true",
                   help="also train both with train.freeze_regressor=true (the released code's behaviour)")
    p.set_defaults(func=_ablation)

    p = commands.add_parser("evaluate", help="test CCC of a run (stored, or on a corpus's test splits)")
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--corpus", type=Path, help="evaluate on this corpus's test splits instead of the stored metrics")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_evaluate)

    p = commands.add_parser("analyze", help="cluster-emotion dependence of a run's latent space (and its map)")
    _explore_arguments(p)
    p.add_argument("--split", action="append", help="only these splits (repeatable; default: all)")
    p.add_argument("--shuffles", type=int, default=20, help="shuffled-cluster baselines")
    p.add_argument("--no-map", action="store_true", help="skip fitting the UMAP map")
    p.set_defaults(func=_analyze)

    p = commands.add_parser("locate", help="place clips in a run's latent space: attributes, cluster, map, neighbours")
    _explore_arguments(p)
    p.add_argument("clips", nargs="+", type=Path, help="audio files and/or folders")
    p.add_argument("--neighbours", type=int, default=5)
    p.add_argument("--out", type=Path, help="write the CSV here instead of stdout")
    p.set_defaults(func=_locate)

    p = commands.add_parser("export", help="write the cluster-emotion, utterance and embedding tables")
    _explore_arguments(p)
    p.add_argument("--format", choices=["csv", "parquet", "json"], default="csv")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_export)

    p = commands.add_parser("bench", help="measure speed on this machine; print a table, save JSON")
    p.add_argument("--out", type=Path, help="JSON file for the results")
    p.add_argument("--no-training", action="store_true", help="skip the training benchmarks (demo preset, SPEC 2.7 epoch; ~6 minutes)")
    p.add_argument("--no-projection", action="store_true", help="skip the UMAP benchmarks (~4 minutes)")
    p.add_argument("--no-app", action="store_true", help="skip the app cold-start benchmark in a browser (~2 minutes)")
    p.set_defaults(func=_bench)

    p = commands.add_parser("runs", help="list the runs in the store")
    p.set_defaults(func=_runs)

    args = parser.parse_args(argv)
    from core.audio import AudioLoadingError
    from core.extraction import CorpusAudioError
    from core.manifest import ManifestError
    from core.official import OfficialImportError
    from core.store import CorruptFileError, RunLockedError, RunNotFoundError
    from core.explore import ExploreError
    from core.train import TrainingConfigError
    try:
        return args.func(args)
    except (ManifestError, CorpusAudioError, OfficialImportError, RunNotFoundError, AudioLoadingError,
            TrainingConfigError, RunLockedError, ExploreError, CorruptFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every finished epoch is saved; run the same command again to resume", file=sys.stderr)
        return 130


def _store(args):
    from core.store import RunStore
    return RunStore(args.runs_dir)


def _import_official(args) -> int:
    from core.official import OfficialImportError, find_official_files, import_official
    if args.source:
        checkpoints, norm_dir = find_official_files(args.source)
    else:
        given = {"arousal": args.arousal, "dominance": args.dominance, "valence": args.valence}
        if None in given.values() or args.norm_terms is None:
            raise OfficialImportError("give --from FOLDER, or all of --arousal, --dominance, --valence and --norm-terms")
        checkpoints, norm_dir = given, args.norm_terms
    run = import_official(checkpoints, norm_dir, _store(args))
    print(f"imported run {run.run_id} into {run.dir.parent}")
    return 0


def _predict(args) -> int:
    from core.inference import Predictor, expand_audio_paths
    store = _store(args)
    run = store.load(args.run) if args.run else store.latest()
    paths = expand_audio_paths(args.inputs)
    if not paths:
        print(f"error: no audio files in {', '.join(map(str, args.inputs))}", file=sys.stderr)
        return 2
    result = Predictor.from_run(run, args.device).predict_files(paths)
    table = result.chunks if args.chunks else result.utterances.drop(columns="path")
    csv = table.to_csv(float_format="%.6f")
    if args.out:
        args.out.write_text(csv)
    else:
        sys.stdout.write(csv)
    for path, reason in result.errors.items():
        print(f"error: {path}: {reason}", file=sys.stderr)
    print(f"predicted {len(result.utterances)} of {len(paths)} files with run {run.run_id}", file=sys.stderr)
    return 1 if result.errors else 0


def _demo_corpus(args) -> int:
    from core.store import default_data_dir
    from core.synthetic import make_demo_corpus
    out = args.out or default_data_dir() / "demo"
    manifest = make_demo_corpus(out, seed=args.seed, progress=_progress_bar("synthesising"))
    print(f"demo corpus: {manifest}")
    return 0


def _extract(args) -> int:
    from core.config import RunConfig
    from core.extraction import extract_features
    from core.manifest import load_corpus
    from core.store import FeatureStore, default_data_dir
    cfg = RunConfig()
    table = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=cfg.labels)
    store = FeatureStore(default_data_dir() / "cache", cfg.audio, cfg.features, cfg.chunks)
    feats, stats = extract_features(table, store, cfg.audio, cfg.features, cfg.chunks, workers=args.workers,
                                    skip_unreadable=args.skip_unreadable, progress=_progress_bar("extracting"))
    print(f"{len(feats.files)} utterances, {len(feats.frames)} frames; extracted {stats.n_extracted} new files "
          f"({stats.audio_seconds:.0f} s of audio) in {stats.seconds:.1f} s, real-time factor {stats.real_time_factor:.4f}")
    return 0


def _corpus_arguments(p) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--preset", default="default", help="default, demo, tiny, paper or paper-<attribute>")
    p.add_argument("--config", type=Path, help="TOML file of overrides ([train] epochs = 3 ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--workers", type=int, default=None, help="feature-extraction processes")


def _config(args):
    from core.config import apply_overrides, preset, toml_overrides
    from core.train import TrainingConfigError
    try:
        cfg = preset(args.preset)
        if args.config:
            cfg = apply_overrides(cfg, toml_overrides(args.config))
        return apply_overrides(cfg, args.overrides)
    except (ValueError, OSError) as err:  # bad preset, override or TOML file: nothing has started
        raise TrainingConfigError(str(err)) from err


def _train_one(args, cfg, force: bool = False):
    from core.manifest import load_corpus
    from core.store import default_data_dir
    from core.train import train
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=cfg.labels)
    printer = _TrainPrinter()
    try:
        result = train(cfg, corpus, _store(args), default_data_dir() / "cache", force=force, progress=printer,
                       workers=args.workers)
    finally:
        printer.close()
    return result


def _train(args) -> int:
    result = _train_one(args, _config(args), force=args.force)
    verb = "trained" if result.trained else "loaded existing run"
    print(f"{verb} {result.run.run_id} ({result.run.dir})")
    _print_test_ccc({result.run.run_id: result.test_ccc})
    return 0


def _ablation(args) -> int:
    import dataclasses
    base = _config(args)
    variants = {"with unlabelled": True, "labelled only": False}
    rows = {}
    for frozen in ([False, True] if args.with_frozen_regressor else [base.train.freeze_regressor]):
        for label, use in variants.items():
            cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, use_unlabelled=use, freeze_regressor=frozen))
            name = label + (", frozen regressor" if frozen else "")
            print(f"== {name}", file=sys.stderr)
            rows[name] = _train_one(args, cfg).test_ccc
    _print_test_ccc(rows)
    return 0


def _evaluate(args) -> int:
    from core.store import read_json
    store = _store(args)
    run = store.load(args.run) if args.run else store.latest()
    if args.corpus is None:
        metrics = read_json(run, "metrics")
        if not metrics:
            print(f"error: run {run.run_id} has no stored test metrics; give --corpus", file=sys.stderr)
            return 2
        _print_test_ccc({run.run_id: metrics["test_ccc"]})
        return 0
    from core.inference import Predictor, evaluate_corpus
    from core.manifest import load_corpus
    corpus = load_corpus(args.corpus, labels=run.config.labels)
    _print_test_ccc({run.run_id: evaluate_corpus(Predictor.from_run(run, args.device), corpus)})
    return 0


def _print_test_ccc(rows: dict) -> None:
    records = [{"run": name, "split": split, **ccc} for name, splits in rows.items() for split, ccc in splits.items()]
    if records:
        print(pd.DataFrame(records).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


class _TrainPrinter:
    """One line per epoch (losses, dev CCC, ETA) and a live stage bar on a terminal."""

    def __init__(self):
        self.tty = sys.stderr.isatty()

    def __call__(self, p) -> None:
        if p.stage == "resume":
            print(f"resuming after epoch {p.done}/{p.epochs} (an earlier run of this config was interrupted)",
                  file=sys.stderr, flush=True)
        elif p.stage == "validate" and p.dev_ccc is not None:
            ccc = " ".join(f"{a} {v:.3f}" for a, v in p.dev_ccc.items())
            eta = f", ETA {p.eta_s / 60:.1f} min" if p.eta_s else ""
            print(f"\repoch {p.epoch + 1}/{p.epochs}: dev CCC {ccc}{eta}" + " " * 20, file=sys.stderr, flush=True)
        elif self.tty or p.done == p.total:
            end = "\n" if (not self.tty and p.done == p.total) else ""
            print(f"\r  epoch {p.epoch + 1}/{p.epochs} {p.stage}: {p.done}/{p.total}", end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _explore_arguments(p) -> None:
    p.add_argument("run", nargs="?", help="run id (default: the newest run)")
    p.add_argument("--corpus", type=Path, help="explore this corpus (default: the run's own; required for imported models)")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips for --corpus")
    p.add_argument("--network", help="imported models: arousal, valence or dominance (default: arousal)")


def _exploration(args):
    from core.explore import explore
    from core.manifest import load_corpus
    store = _store(args)
    run = store.load(args.run) if args.run else store.latest()
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=run.config.labels) if args.corpus else None
    return explore(run, corpus, network=args.network, progress=_stage_printer())


def _stage_printer():
    bars = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = _progress_bar(stage)
        bars[stage](done, total)
    return update


def _analyze(args) -> int:
    from core.explore import analyze_exploration, project
    exploration = _exploration(args)
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
    from core.explore import Locator, project
    from core.inference import expand_audio_paths
    exploration = _exploration(args)
    locator = Locator(exploration, project(exploration))
    table, errors = locator.locate_files(expand_audio_paths(args.clips), n_neighbours=args.neighbours)
    if len(table):
        table["neighbours"] = table["neighbours"].map(" ".join)
        table["neighbour_distances"] = table["neighbour_distances"].map(lambda d: " ".join(map(str, d)))
        csv = table.to_csv(float_format="%.6f")
        args.out.write_text(csv) if args.out else sys.stdout.write(csv)
    for path, reason in errors.items():
        print(f"error: {path}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def _export(args) -> int:
    from core.explore import analyze_exploration, project
    from core.export import export_exploration
    exploration = _exploration(args)
    paths = export_exploration(exploration, analyze_exploration(exploration), project(exploration), args.out, args.format)
    for path in paths:
        print(path)
    return 0


def _bench(args) -> int:
    import json
    from core.bench import as_json, format_table, run_all
    results = run_all(training=not args.no_training, projection=not args.no_projection, app=not args.no_app)
    print(format_table(results))
    if args.out:
        args.out.write_text(json.dumps(as_json(results), indent=1))
    return 0


def _runs(args) -> int:
    runs = _store(args).list()
    if not runs:
        print("no runs yet: import the published models (python -m core import-official --from DIR) or train one")
        return 0
    print(pd.DataFrame([{"run": r.run_id, "kind": r.info.get("kind"), "created": r.info.get("created")}
                        for r in runs]).to_string(index=False))
    return 0


def _progress_bar(label: str):
    from tqdm import tqdm
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr, disable=total == 0)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return update


if __name__ == "__main__":
    sys.exit(main())
