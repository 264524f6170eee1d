from core.bench import BenchResult, bench_predict_latency, format_table


def test_bench_predict_latency_reports_a_positive_time_and_formats(tmp_path):
    result = bench_predict_latency(tmp_path, n_networks=1, repeats=2)
    assert result.value > 0 and result.unit == "s"
    table = format_table([result, BenchResult("x", 1.5, "s", "-")])
    assert "| predict one 5-s clip" in table and "peak RSS" in table
