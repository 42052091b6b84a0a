"""asv_bench/compare_torch.py: the aggregation of alternating blocks into rows, the
tables, and smoke runs of each mode (the timing itself is a benchmark, never a test)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "asv_bench")
sys.path.insert(0, BENCH)

from compare import epoch, report, timing  # noqa: E402

SCRIPT = os.path.join(BENCH, "compare_torch.py")


def fake_result(fastnn_rounds, torch_rounds, floor_rounds):
    return {"fastnn": {"rounds": fastnn_rounds, "times": fastnn_rounds},
            "torch": {"rounds": torch_rounds, "times": torch_rounds},
            "floor": {"rounds": floor_rounds, "times": floor_rounds}}


def test_rows_take_the_spread_over_rounds_and_targets_need_every_round():
    res = fake_result([1.0, 2.0, 1.0], [3.0, 3.0, 1.5], [0.5, 0.5, 0.5])
    row = report.step_row("mlp", 32, res, target=1.5)
    r = row["ratio_fastnn"]
    assert r["rounds"] == [3.0, 1.5, 1.5] and r["min"] == 1.5 and r["median"] == 1.5
    assert report.met(row) is True
    row = report.step_row("mlp", 32, fake_result([1.0, 2.0], [3.0, 2.0], [0.5, 0.5]), 1.5)
    assert report.met(row) is False  # 1.0 in the second round
    assert row["over_floor"]["median"] == 3.0
    table = report.markdown([row], {"rounds": 2, "block_steps": 50, "pause_s": 0.3,
                                    "threads": 2, "cpu_count": 2, "load_before": 0.5,
                                    "load_after": 0.6, "numpy": "x"})
    assert "2.00 (1.00–3.00)" in table and "≥ 1.5" in table and "3.00x" in table


def test_alternate_runs_blocks_in_flipping_order_with_prepare():
    calls = []

    class Step:
        def __init__(self, name):
            self.name = name

        def prepare(self):
            calls.append(("prepare", self.name))

        def __call__(self):
            calls.append(self.name)

    out = timing.alternate({"a": Step("a"), "b": Step("b")}, rounds=2, block_steps=3,
                           pause_s=0.0, warmup_steps=1)
    assert len(out["a"]["rounds"]) == 2 and len(out["a"]["times"]) == 2 * 2  # 1 dropped
    blocks = [c[1] for c in calls if isinstance(c, tuple)]
    assert blocks[2:] == ["a", "b", "b", "a"]  # after the warm-ups: order flips


def test_load_warning(monkeypatch):
    monkeypatch.setattr(timing, "load", lambda: 99.0)
    with pytest.warns(RuntimeWarning, match="load average 99"):
        assert timing.warn_if_loaded()
    monkeypatch.setattr(timing, "load", lambda: 0.0)
    assert not timing.warn_if_loaded()


def test_epoch_table():
    rows = [{"net": "mlp", "batch": 32, "target": 2.0,
             "seconds": {"fit": [2.0, 2.0], "loop": [1.9, 2.1], "steps": [1.8, 1.8],
                         "torch": [5.0, 4.0]}, "torch/fit": [2.5, 2.0],
             "torch/loop": [2.6, 1.9]}]
    text = epoch.markdown(rows, 60000)
    assert "| MLP | 32 | 2.00 s | 2.00 s | 1.80 s | 4.50 s | 2.25 (2.00) |" in text


def _run(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_step_mode_smoke():
    out = _run("--quick", "--only", "mlp", "--batches", "8", "--markdown")
    assert "| MLP | 8 |" in out and "fastnn / GEMM floor" in out


@pytest.mark.skipif(not os.environ.get("FASTNN_DATA"), reason="needs MNIST (FASTNN_DATA)")
def test_epoch_mode_smoke():
    out = _run("--epoch", "--quick", "--rounds", "1", "--epoch-samples", "600",
               "--epoch-configs", "mlp:128", "--markdown")
    assert "| MLP | 128 |" in out and "600 images per epoch" in out
