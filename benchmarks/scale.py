"""Toward MSP-Podcast size (issue 11, item 4): feature stores of tens of thousands of utterances, the embedding
pass, K-means on 1.65 M vectors and the data path alone, measured here and extrapolated to one epoch.

MSP-Podcast: ~150 000 labelled utterances (~240 h) and 40 000 unlabelled ones per run, 11 chunks each: one
epoch embeds ~1.65 M labelled and ~0.44 M unlabelled 62 x 128 chunks and clusters each set. The stores are
synthetic (`benchmarks.synthetic_store`): real files and the real store format, random features.

`python -m benchmarks.scale embed FOLDER N_CHUNKS OUT` is the torchrun side of the two-process embedding row.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.memory import with_peak_rss
from benchmarks.results import NO_TARGET, BenchResult
from benchmarks.scale_training import bench_training_memory
from benchmarks.synthetic_store import build_synthetic_corpus, corpus_paths, disk_bytes, open_store

EPOCH_LABELLED_CHUNKS = 1_650_000  # 150 000 utterances x 11 chunks
EPOCH_UNLABELLED_CHUNKS = 440_000  # 40 000 x 11
BATCH_CHUNKS = 704  # 64 utterances x 11 chunks: one training batch
# What one GPU's training step consumes, assumed: an H100-class GPU at ~400 TFLOP/s bf16 dense and 40 %
# of it would train 0.875 GFLOP chunks at ~180 000 chunks/s; this small network (62 x 128 inputs, 7 conv
# layers with BatchNorm) gets far less of a GPU in practice, and ~20 000 chunks/s (17.5 TFLOP/s, ~4 % of
# peak) is the conservative figure the data path must keep up with.
GPU_CHUNKS_PER_S = 20_000
GPU_CEILING_CHUNKS_PER_S = 180_000
KMEANS_TARGET_S = 60.0


def run_scale(work: Path, sizes: tuple[int, ...] = (15_000, 60_000), embed_chunks: int = 20_000,
              kmeans_vectors: int = EPOCH_LABELLED_CHUNKS) -> list[BenchResult]:
    """Every scale row, each benchmark in a process of its own; the stores are deleted after their rows."""
    results = []
    for n in sizes:
        folder = Path(work) / f"scale-{n}"
        try:
            results += with_peak_rss(bench_store_build, folder, n)
            results += with_peak_rss(bench_pack_build, folder)
            results += with_peak_rss(bench_store_reopen, folder)
            if n == sizes[-1]:  # the largest store: throughput over its chunks
                results += with_peak_rss(bench_embedding_slice, folder, embed_chunks)
                results.append(bench_embedding_torchrun(folder, embed_chunks))
                results += with_peak_rss(bench_data_path_prefetched, folder, False)
                results += with_peak_rss(bench_data_path_prefetched, folder, True)
            results += with_peak_rss(bench_training_memory, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    results += epoch_extrapolation(results)
    for k in (10, 30):
        results += with_peak_rss(bench_kmeans, kmeans_vectors, k, "sklearn")
    results += with_peak_rss(bench_kmeans, kmeans_vectors, 30, "faiss")
    return results


def bench_store_build(folder: Path, n_utterances: int) -> BenchResult:
    """Hard links, manifest and store shards written directly (no audio decoded)."""
    corpus = build_synthetic_corpus(folder, n_utterances)
    gb = disk_bytes(corpus.cache_root)["shards"] / 1e9
    return BenchResult(f"synthetic feature store, {n_utterances:,} utterances ({corpus.audio_seconds / 3600:.1f} h), "
                       "written directly", corpus.seconds, "s", NO_TARGET,
                       f"{corpus.n_frames:,} frames = {gb:.2f} GB of shards ({gb * 1e3 / corpus.seconds:.0f} MB/s incl. "
                       "links, manifest and SHA-256 of each shard); hard links to 20 real 2-12 s clips")


def bench_pack_build(folder: Path) -> list[BenchResult]:
    """`load_manifest` + `extract_features` in a fresh process: every file already extracted, the pack built."""
    from core.config import AudioConfig, ChunkConfig, FeatureConfig
    from core.data.extraction import extract_features
    from core.data.corpus_formats import load_manifest
    manifest, cache_root = corpus_paths(folder)
    t0 = time.perf_counter()
    table = load_manifest(manifest)
    t_manifest = time.perf_counter() - t0
    store = open_store(cache_root)
    t1 = time.perf_counter()
    store.index()  # verifies every shard's SHA-256 (once per process; extract_features reuses it)
    t_index = time.perf_counter() - t1
    extraction = extract_features(table, store, AudioConfig(), FeatureConfig(), ChunkConfig(), workers=1)
    seconds = time.perf_counter() - t1
    sizes = disk_bytes(cache_root)
    features = extraction.features
    assert extraction.stats.n_extracted == 0, f"{extraction.stats.n_extracted} files were extracted again"
    assert len(features.files) == len(table) and int(features.stored_frames.sum()) == len(features.frames)
    n = len(table)
    return [
        BenchResult(f"feature pack of {n:,} utterances from the store (extract_features, 0 files to extract)",
                    seconds, "s", NO_TARGET,
                    f"{sizes['packs'] / 1e9:.2f} GB pack, {sizes['packs'] / 1e6 / seconds:.0f} MB/s; of which "
                    f"verifying the shards {t_index:.1f} s; load_manifest {t_manifest:.1f} s before it; "
                    f"n_extracted = {extraction.stats.n_extracted}"),
        BenchResult(f"feature store on disk, {n:,} utterances (shards + pack)", (sizes["shards"] + sizes["packs"]) / 1e9,
                    "GB", NO_TARGET, f"shards {sizes['shards'] / 1e9:.2f} GB + pack {sizes['packs'] / 1e9:.2f} GB; "
                    f"{(sizes['shards'] + sizes['packs']) / n / 1e3:.0f} KB per utterance"),
    ]


def bench_store_reopen(folder: Path) -> BenchResult:
    """`extract_features` once more in a fresh process: what every later run pays to open the store."""
    from core.config import AudioConfig, ChunkConfig, FeatureConfig
    from core.data.extraction import extract_features
    from core.data.corpus_formats import load_manifest
    manifest, cache_root = corpus_paths(folder)
    table = load_manifest(manifest)
    t0 = time.perf_counter()
    extraction = extract_features(table, open_store(cache_root), AudioConfig(), FeatureConfig(), ChunkConfig(), workers=1)
    seconds = time.perf_counter() - t0
    gb = sum(disk_bytes(cache_root).values()) / 1e9
    return BenchResult(f"reopen the store of {len(table):,} utterances (extract_features, fresh process, pack built)",
                       seconds, "s", NO_TARGET, f"SHA-256 of every shard and of the pack: {gb:.2f} GB read, "
                       f"{gb * 1e3 / seconds:.0f} MB/s; n_extracted = {extraction.stats.n_extracted}")


def _opened(folder: Path, n_chunks: int | None, world=None):
    """(features, chunk set of the first utterances holding `n_chunks` chunks (None: all), normaliser) of a store."""
    import torch
    from core.config import AudioConfig, ChunkConfig, FeatureConfig
    from core.data.dataset import Normaliser, feature_statistics, make_chunk_set
    from core.data.extraction import extract_features
    from core.data.corpus_formats import load_manifest
    manifest, cache_root = corpus_paths(folder)
    table = load_manifest(manifest)
    chunks = ChunkConfig()
    features = extract_features(table, open_store(cache_root), AudioConfig(), FeatureConfig(), chunks, workers=1,
                                world=world).features
    files = features.files if n_chunks is None else features.files[: -(-n_chunks // chunks.n_chunks)]
    stats = feature_statistics(features, features.files[:1000])  # a sample: the full pass would read the corpus
    normaliser = Normaliser.from_statistics(stats.mean, stats.std, FeatureConfig().clip, torch.device("cpu"))
    return features, make_chunk_set(features, files, chunks), normaliser


def _published_network():
    import torch
    from core.config import ModelConfig
    from core.model.network import EmotionCNN
    torch.manual_seed(0)  # the same weights on every rank
    return EmotionCNN(ModelConfig()).eval().to(memory_format=torch.channels_last)


def _embedding_rate(folder: Path, n_chunks: int, world=None) -> tuple[float, int, float]:
    """(chunks/s of the whole pass, chunks, seconds) of `embed_chunks` over the first `n_chunks` chunks, after a warm-up."""
    from core.data.dataset import ChunkSet
    from core.model.forward import embed_chunks
    _, chunk_set, normaliser = _opened(folder, n_chunks, world)
    model = _published_network()
    warm = ChunkSet(chunk_set.frames, chunk_set.starts[:256], chunk_set.utterance[:256], chunk_set.files,
                    None, chunk_set.n_chunks, chunk_set.chunk_frames)
    embed_chunks(model, warm, normaliser, world)  # oneDNN primitives, the heap's first growth
    if world is not None:
        world.barrier()
    t0 = time.perf_counter()
    embed_chunks(model, chunk_set, normaliser, world)
    seconds = time.perf_counter() - t0
    return len(chunk_set) / seconds, len(chunk_set), seconds


def bench_embedding_slice(folder: Path, n_chunks: int) -> BenchResult:
    import torch
    rate, n, seconds = _embedding_rate(folder, n_chunks)
    return BenchResult(f"embedding pass over {n:,} chunks of the store (embed_chunks, published network), 1 process",
                       rate, "chunks/s", NO_TARGET, f"{seconds:.1f} s measured; memory-mapped pack; "
                       f"{torch.get_num_threads()} torch threads; eval, channels-last; measured")


def bench_embedding_torchrun(folder: Path, n_chunks: int, n_procs: int = 2, timeout_s: float = 1200) -> BenchResult:
    """The same pass under `torchrun --standalone --nproc_per_node=n_procs` (gloo, CPU): chunks/s of the whole job."""
    name = f"embedding pass over {n_chunks:,} chunks, {n_procs} processes (torchrun, gloo)"
    out = Path(folder) / "torchrun.json"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone", f"--nproc_per_node={n_procs}",
               "-m", "benchmarks.scale", "embed", str(folder), str(n_chunks), str(out)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as err:
        return BenchResult(name, None, "chunks/s", NO_TARGET, f"skipped: {type(err).__name__}: {err}")
    wall = time.perf_counter() - t0
    if done.returncode != 0 or not out.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return BenchResult(name, None, "chunks/s", NO_TARGET, f"failed (rc {done.returncode}): {last}")
    r = json.loads(out.read_text())
    name = f"embedding pass over {r['chunks']:,} chunks, {n_procs} processes (torchrun, gloo)"  # the store may hold fewer
    return BenchResult(name, r["rate"], "chunks/s", NO_TARGET,
                       f"{r['seconds']:.1f} s for the pass (measured, rank 0, between barriers); {r['threads']} torch "
                       f"thread(s) per rank; whole torchrun job {wall:.0f} s incl. start-up and opening the store",
                       peak_rss_mb=r["peak_rss_mb"])


def _torchrun_rank(folder: str, n_chunks: str, out: str) -> None:
    import resource
    from core import keep_freed_memory
    from core.runtime.distributed import close_world, init_world
    import torch
    keep_freed_memory()
    world = init_world(device="cpu", backend="gloo")
    rate, chunks, seconds = _embedding_rate(Path(folder), int(n_chunks), world)
    peaks = world.gather_objects(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if world.is_main:
        Path(out).write_text(json.dumps({"rate": rate, "chunks": chunks, "seconds": seconds, "threads": torch.get_num_threads(),
                                         "peak_rss_mb": sum(peaks)}))
    close_world(world)


def epoch_extrapolation(results: list[BenchResult]) -> list[BenchResult]:
    """One epoch's two embedding stages (1.65 M labelled + 0.44 M unlabelled chunks) at each measured rate."""
    rows = []
    for r in results:
        if r.name.startswith("embedding pass") and r.value:
            chunks = EPOCH_LABELLED_CHUNKS + EPOCH_UNLABELLED_CHUNKS
            rows.append(BenchResult(f"one epoch's embedding stages, {chunks / 1e6:.2f} M chunks, at the rate of: "
                                    f"{r.name}", chunks / r.value, "s", NO_TARGET,
                                    f"extrapolated: {chunks:,} chunks / {r.value:.0f} chunks/s measured (linear: "
                                    f"embed_chunks streams 64-chunk batches; = {chunks / r.value / 3600:.1f} h); "
                                    f"at {GPU_CHUNKS_PER_S:,} chunks/s (assumed GPU) "
                                    f"{chunks / GPU_CHUNKS_PER_S:.0f} s"))
    return rows


def bench_data_path_prefetched(folder: Path, cold: bool, n_batches: int = 60, budget_s: float = 90.0) -> list[BenchResult]:
    """Random 704-chunk batches through `prefetched_inputs` (2 gather threads) and, as the baseline in the same
    process and page-cache state, through `load_chunks` one after another; no network."""
    import torch
    from core.data.dataset import load_chunks
    from core.data.loader import GATHER_WORKERS, prefetched_inputs
    features, chunk_set, normaliser = _opened(folder, None)
    which = "cold (page cache dropped)" if cold else "warm (pack in page cache)"
    target = f">= {GPU_CHUNKS_PER_S:,} chunks/s (one GPU's training step, assumed)"
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(chunk_set), BATCH_CHUNKS) for _ in range(2 * n_batches)]
    rows = []
    for label, run in ((f"{GATHER_WORKERS} background gather threads (core.data.loader)",
                        lambda part: prefetched_inputs(chunk_set, part, normaliser)),
                       ("baseline: load_chunks in the loop",
                        lambda part: (load_chunks(chunk_set, index, normaliser) for index in part))):
        part = batches[:n_batches] if not rows else batches[n_batches:]  # fresh chunks for each: no reuse of cache
        if cold and not _drop_page_cache():
            return [BenchResult(f"data path alone, {label}, {which}", None, "chunks/s", target,
                                "skipped: cannot drop the page cache here")]
        if not cold:
            _read_through(features.frames.filename)
        t0, done = time.perf_counter(), 0
        for inputs in run(part):
            done += len(inputs)
            if time.perf_counter() - t0 > budget_s:
                break
        rate = done / (time.perf_counter() - t0)
        rows.append(BenchResult(f"data path alone, random {BATCH_CHUNKS}-chunk batches, {label}, {which}", rate,
                                "chunks/s", target,
                                f"{done // BATCH_CHUNKS} batches of {len(chunk_set):,} chunks; {rate / GPU_CHUNKS_PER_S:.2f} x "
                                f"the assumed {GPU_CHUNKS_PER_S:,} chunks/s, {rate / GPU_CEILING_CHUNKS_PER_S:.2f} x the "
                                f"{GPU_CEILING_CHUNKS_PER_S:,} ceiling; gather + normalise + layout on the CPU "
                                f"({torch.get_num_threads()} torch threads)", met=rate >= GPU_CHUNKS_PER_S))
    return rows


def _drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _read_through(path: str) -> None:
    buffer = bytearray(1 << 26)
    with open(path, "rb") as fh:  # read(), not the mapping: into the page cache, not this process's RSS
        while fh.readinto(buffer):
            pass


def clustered_vectors(n: int, dim: int = 256, n_modes: int = 30, spread: float = 0.5, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 drawn from a mixture of `n_modes` overlapping Gaussians: K-means input with some structure.

    Overlapping on purpose: sklearn stops before `max_iter` once no label changes, which well-separated modes
    reach in a few iterations (spread 3: 4 of 20 at K = 10); at 0.5 all 20 run at K = 10 and 30, as on embeddings.
    """
    rng = np.random.default_rng(seed)
    centres = spread * rng.standard_normal((n_modes, dim), dtype=np.float32)
    X = rng.standard_normal((n, dim), dtype=np.float32)
    X += centres[rng.integers(0, n_modes, n)]
    return X


def bench_kmeans(n: int, k: int, backend: str, n_iterations: int = 20) -> BenchResult:
    """`PseudoLabeler` (20 Lloyd iterations, as every epoch runs) on n x 256 clustered vectors."""
    import importlib.util
    from threadpoolctl import threadpool_info
    from core.model.clustering import PseudoLabeler
    name = f"K-means, {n:,} x 256 vectors, K = {k}, {n_iterations} iterations ({backend})"
    target = f"<= {KMEANS_TARGET_S:.0f} s on 2 cores"
    if importlib.util.find_spec(backend) is None:
        return BenchResult(name, None, "s", target, f"skipped: {backend} is not installed here")
    X = clustered_vectors(n)
    t0 = time.perf_counter()
    labeler = PseudoLabeler(n_clusters=k, n_iterations=n_iterations, backend=backend, random_state=0).fit(X)
    seconds = time.perf_counter() - t0
    threads = max((p.get("num_threads", 0) for p in threadpool_info()), default=0)
    sizes = labeler.cluster_sizes()
    return BenchResult(name, seconds, "s", target, f"at most {n_iterations} iterations, tolerance 0 (sklearn stops early when no label changes); {X.nbytes / 1e9:.2f} GB of "
                       f"float32 input; cluster sizes {sizes.min():,}-{sizes.max():,}; up to {threads} BLAS/OpenMP "
                       f"threads", met=seconds <= KMEANS_TARGET_S)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "embed":
        _torchrun_rank(*sys.argv[2:])
    else:
        sys.exit("usage (under torchrun): python -m benchmarks.scale embed FOLDER N_CHUNKS OUT_JSON")
