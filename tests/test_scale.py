"""The scale benchmark's synthetic corpus is one the library accepts as already extracted, and its rows measure."""
import numpy as np

from benchmarks.scale import bench_data_path_prefetched, bench_kmeans, bench_pack_build, epoch_extrapolation
from benchmarks.scale_training import bench_training_memory
from benchmarks.results import BenchResult
from benchmarks.synthetic_store import build_synthetic_corpus, corpus_paths, disk_bytes, open_store
from core.audio.frontend import load_features
from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.data.corpus_formats import load_manifest
from core.data.extraction import extract_features


def test_scale_synthetic_store_is_found_extracted_and_packs_its_frame_counts(tmp_path):
    corpus = build_synthetic_corpus(tmp_path / "corpus", 30, n_clips=4, seconds=(2.0, 5.0))
    table = load_manifest(corpus.manifest)
    assert len(table) == 30 and set(table["split"]) <= {"train", "dev", "test", "unlabelled"}
    assert table.loc[table["split"] == "unlabelled", "arousal"].isna().all()
    extraction = extract_features(table, open_store(corpus.cache_root), AudioConfig(), FeatureConfig(), ChunkConfig(),
                                  workers=1)
    assert extraction.stats.n_extracted == 0  # every hard link's key is in the store: nothing decoded
    features = extraction.features
    assert list(features.files) == list(table.index)
    assert int(features.n_frames.sum()) == corpus.n_frames == len(features.frames)
    # the stored length is the one the frontend computes from the real (linked) audio
    first = load_features([table["path"].iloc[0]], AudioConfig(), FeatureConfig(), ChunkConfig()).clips[0]
    assert first.n_frames == features.n_frames[0] and (features.utterance(0) > 0).all()
    sizes = disk_bytes(corpus.cache_root)
    assert sizes["shards"] > corpus.n_frames * 128 * 4 and sizes["packs"] > corpus.n_frames * 128 * 4


def test_scale_rows_return_positive_figures(tmp_path):
    build_synthetic_corpus(tmp_path, 30, n_clips=3, seconds=(2.0, 3.0))
    manifest, _ = corpus_paths(tmp_path)
    pack, disk = bench_pack_build(tmp_path)
    assert pack.value > 0 and "n_extracted = 0" in pack.detail and disk.value > 0 and disk.unit == "GB"
    prefetched, baseline = bench_data_path_prefetched(tmp_path, cold=False, n_batches=2)
    for data in (prefetched, baseline):
        assert data.value > 0 and data.unit == "chunks/s" and data.met is not None
    assert "background gather threads" in prefetched.name and "baseline" in baseline.name
    (memory,) = bench_training_memory(tmp_path, train_batches=1)  # this process's memory includes every earlier test's:
    assert memory.unit == "MB" and 0 < memory.value and memory.met is not None  # `met` is judged in `--scale` runs,
    assert "embedded in full" in memory.detail and "training cut to 1 batches" in memory.detail  # each in a fresh process
    kmeans = bench_kmeans(2_000, 10, "sklearn")
    assert kmeans.value > 0 and kmeans.met is True
    (row,) = epoch_extrapolation([BenchResult("embedding pass over 1,000 chunks, 1 process", 500.0, "chunks/s", "-")])
    assert np.isclose(row.value, 2_090_000 / 500.0) and "extrapolated" in row.detail
