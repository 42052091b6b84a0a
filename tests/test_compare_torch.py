"""asv_bench/compare_torch.py's aggregation of repeated runs (the timing itself is a
benchmark, never a test)."""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _module():
    path = os.path.join(HERE, "..", "asv_bench", "compare_torch.py")
    spec = importlib.util.spec_from_file_location("compare_torch", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_repeated_runs_merge_to_medians_and_a_ratio_range():
    ct = _module()

    def row(f, t):
        return {"batch": 32, "target": 1.5, "fastnn": {"median_s": f}, "torch": {"median_s": t},
                "ratio": t / f, "fastnn_over_floor": f / 0.001}

    merged = ct._merge_rows([[row(2.0, 3.0)], [row(1.0, 3.0)], [row(4.0, 2.0)]])
    assert len(merged) == 1
    m = merged[0]
    assert m["fastnn"]["median_s"] == 2.0 and m["torch"]["median_s"] == 3.0
    assert m["ratio"] == 1.5 and m["ratio_range"] == (0.5, 3.0)
    assert m["fastnn_over_floor"] == 2000.0
    text = ct.markdown({"mlp": merged, "cnn": [], "startup": [],
                        "meta": {"threads": 2, "cpu_count": 2, "load_before": 1.0,
                                 "load_after": 1.0, "peak_sgemm_gflops": 100.0,
                                 "torch": "x", "numpy": "y", "numba": "z", "repeat": 3}})
    assert "1.50 (0.50–3.00)" in text and "the median of 3 runs" in text
