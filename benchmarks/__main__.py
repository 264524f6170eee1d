"""`python -m benchmarks`: measure speed on this machine, print the table, save it as JSON (`--out FILE`)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from core import keep_freed_memory
from benchmarks.app import APP_FIRST, bench_app_cold_start, bench_app_fresh_start
from benchmarks.corpus import bench_demo_corpus, bench_feature_extraction
from benchmarks.embedding import bench_embedding
from benchmarks.latency import bench_locate, bench_predict_latency
from benchmarks.long_inputs import bench_long_inputs
from benchmarks.map import bench_map
from benchmarks.memory import with_peak_rss
from benchmarks.projection import bench_projection
from benchmarks.results import NO_TARGET, BenchResult, as_json, format_table
from benchmarks.scale import run_scale
from benchmarks.sessions import bench_sessions
from benchmarks.soak import bench_soak
from benchmarks.suspects import bench_suspects
from benchmarks.training import bench_demo_training, bench_training
from benchmarks.uncertainty import bench_bootstrap


def run_all(work: Path | None = None, training: bool = True, projection: bool = True,
            app: bool = True, scale: tuple[int, ...] | None = None, map_points: int | None = None,
            fresh_app: bool = False, suspects: bool = False, sessions_points: int | None = None,
            soak_minutes: float | None = None, long_inputs: bool = False) -> list[BenchResult]:
    """Every benchmark, each in a process of its own (but the app's, which measures its server's tree).

    `scale`: also the scale rows over synthetic stores of these many utterances (`benchmarks.scale`); with
    training, projection and app all off, only those. `map_points`: also the map of that many utterances in a
    browser (`benchmarks.map`); with training, projection and app off and no `scale`, only that. `fresh_app`:
    also a newcomer's first start in a browser (`benchmarks.app.bench_app_fresh_start`); with every other
    benchmark off, only that. `suspects`: also the suspicious-label ranking scored against known corrupted labels
    (`benchmarks.suspects`); with every other benchmark off, only that. `sessions_points`: also four sessions at once on
    a map of that many utterances against one session (`benchmarks.sessions`); `soak_minutes`: also a soak of that
    many minutes (`benchmarks.soak`); `long_inputs`: also predict over 1 000 and 10 000 clips and a one-hour recording
    through predict and locate (`benchmarks.long_inputs`); with every other benchmark off, only those (any of them).
    """
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        extras = bool(sessions_points or soak_minutes or long_inputs)  # issue 33's rows: added to any table, or alone
        if extras and not (training or projection or app or scale or map_points or fresh_app or suspects):
            return _under_load(work, sessions_points, soak_minutes, long_inputs)
        if suspects and not (training or projection or app or scale or map_points or fresh_app or extras):
            return with_peak_rss(bench_suspects, work)
        if fresh_app and not (training or projection or app or scale or map_points or extras):
            return bench_app_fresh_start(work)
        if map_points and not (training or projection or app or scale or extras):
            return bench_map(work, map_points)
        if scale and not (training or projection or app or extras):
            return run_scale(work, scale)
        results = with_peak_rss(bench_demo_corpus, work)
        manifest = work / "demo" / "manifest.csv"
        results += with_peak_rss(bench_feature_extraction, manifest, work, 1)
        results += with_peak_rss(bench_feature_extraction, manifest, work, 2)
        results += with_peak_rss(bench_predict_latency, work)
        results += with_peak_rss(bench_locate, work)
        results += with_peak_rss(bench_bootstrap)
        results += bench_embedding(work)  # two processes of its own: with and without the malloc options
        if app:  # measures its own server's memory, so not in a process of its own
            try:
                results += bench_app_cold_start(work)
            except RuntimeError as err:  # a broken app start must not cost the rest of the table
                results.append(BenchResult(APP_FIRST, None, "s", NO_TARGET, f"failed: {str(err).splitlines()[0]}"))
        if projection:
            for n in (10_000, 50_000, 150_000):
                results += with_peak_rss(bench_projection, n)
        if training:
            results += with_peak_rss(bench_demo_training, manifest, work)
            results += with_peak_rss(bench_training, work)
        if scale:
            results += run_scale(work, scale)
        if map_points:
            results += bench_map(work, map_points)
        if fresh_app:
            results += bench_app_fresh_start(work)
        if suspects:
            results += with_peak_rss(bench_suspects, work)
        results += _under_load(work, sessions_points, soak_minutes, long_inputs)
    return results


def _under_load(work: Path, sessions_points: int | None, soak_minutes: float | None, long_inputs: bool) -> list[BenchResult]:
    """Issue 33's rows: several sessions at once (`--sessions`), a compressed day (`--soak`), long inputs
    (`--long-inputs`, each measurement in a process of its own), each where asked for."""
    return ([*bench_sessions(work, sessions_points)] if sessions_points else []) + \
        ([*bench_soak(work, soak_minutes)] if soak_minutes else []) + (bench_long_inputs(work) if long_inputs else [])


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # once per process: the training loop's allocation churn (~1.5x faster CPU steps)
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="measure speed on this machine; print a table, save JSON")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    parser.add_argument("--no-training", action="store_true",
                        help="skip the training benchmarks (demo preset, SPEC 2.7 epoch; ~6 minutes)")
    parser.add_argument("--no-projection", action="store_true", help="skip the UMAP benchmarks (~4 minutes)")
    parser.add_argument("--no-app", action="store_true",
                        help="skip the app cold-start benchmark in a browser (~2 minutes)")
    parser.add_argument("--scale", action="store_true",
                        help="add the scale rows toward MSP-Podcast size: synthetic stores, embedding, K-means on "
                             "1.65 M vectors, the data path (~27 GB of disk at most, ~20 minutes); with every --no-* flag, only those")
    parser.add_argument("--scale-sizes", default="15000,60000",
                        help="utterances of the synthetic stores, comma-separated (default 15000,60000: ~3.4 and ~13.5 GB each)")
    parser.add_argument("--map", type=int, nargs="?", const=150_000, metavar="N",
                        help="add the latent map of N synthetic utterances (default 150000) in headless chromium: load, "
                             "recolour, selection, server memory (~1 minute); with every --no-* flag and no --scale, only that")
    parser.add_argument("--fresh-app", action="store_true",
                        help="add a newcomer's first start in headless chromium: empty data folder to the first map "
                             "(~3-5 minutes); with every --no-* flag, only that")
    parser.add_argument("--suspects", action="store_true",
                        help="add the suspicious-label benchmark: a demo corpus with 10 %% of train labels corrupted, a "
                             "demo run trained on it, precision/recall of the ranking (~4 minutes); with every --no-* flag, only that")
    parser.add_argument("--sessions", type=int, nargs="?", const=150_000, metavar="N",
                        help="add four browser sessions at once on the map of N synthetic utterances (default 150000), "
                             "with a fifth locating clips and a training from the Runs page, against one session: "
                             "latency, server memory, leaks between sessions (~5 minutes); with every --no-* flag, only that")
    parser.add_argument("--soak", type=float, nargs="?", const=30.0, metavar="MINUTES",
                        help="add a soak: sessions opening and closing for MINUTES (default 30), recolouring, selecting, "
                             "uploading, one training; server memory growth, file descriptors and threads from /proc (and "
                             "2.5 minutes idle after); with every --no-* flag, only that (or with --sessions, those two)")
    parser.add_argument("--long-inputs", action="store_true",
                        help="add predict over folders of 1 000 and 10 000 clips and a one-hour recording through predict "
                             "and locate: time, peak memory (~8-10 minutes); with every --no-* flag, only that")
    parser.add_argument("--work", type=Path, help="where the temporary working folder goes (default: the system's temporary folder)")
    args = parser.parse_args(argv)
    scale = tuple(int(n) for n in args.scale_sizes.split(",")) if args.scale else None
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as work:  # deleted at the end, under --work if given
        results = run_all(Path(work), training=not args.no_training, projection=not args.no_projection,
                          app=not args.no_app, scale=scale, map_points=args.map, fresh_app=args.fresh_app,
                          suspects=args.suspects, sessions_points=args.sessions, soak_minutes=args.soak,
                          long_inputs=args.long_inputs)
    print(format_table(results))
    if args.out:
        args.out.write_text(json.dumps(as_json(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
