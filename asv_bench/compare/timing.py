"""Timing steps of several libraries side by side in one process.

Each library runs in blocks of consecutive steps, the libraries alternate block by block
(the order flips every round), and every block starts after a pause. Why: after a step,
idle OpenMP (torch) and OpenBLAS (fastnn, NumPy) threads keep spinning for a while and
steal the core the other library's next step needs, so steps interleaved one by one
measure the other library's spin as much as their own. The first steps of a block are
dropped (the pools wake up then); each block gives one median, and each round one ratio,
so the spread over rounds shows the machine's noise.
"""
import os
import time
import warnings

import numpy as np


def load():
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def warn_if_loaded(what="the measurement"):
    """Warn, and return True, when the load average exceeds the core count: other
    processes then compete for the cores and the figures are inflated and noisy."""
    ncpu, avg = os.cpu_count() or 1, load()
    if avg > ncpu:
        warnings.warn(f"load average {avg:.2f} on {ncpu} CPUs during {what}: other processes "
                      f"compete for the cores; absolute times are inflated, ratios noisy",
                      RuntimeWarning, stacklevel=2)
        return True
    return False


def run_block(step, steps, drop):
    """Time ``steps`` consecutive calls of ``step``; the median of all but the first
    ``drop``, and every kept time."""
    clock = time.perf_counter
    times = []
    for _ in range(steps):
        t0 = clock()
        step()
        times.append(clock() - t0)
    kept = times[drop:]
    return float(np.median(kept)), kept


def alternate(steps, rounds=5, block_steps=50, pause_s=0.3, warmup_steps=5):
    """Alternating blocks of ``block_steps`` steps of each callable in ``steps``
    (``{name: step}``), a ``pause_s`` sleep before each block.

    Returns
    -------
    dict
        ``{name: {"rounds": [median per round], "times": [every kept step time]}}``.
    """
    for step in steps.values():
        prepare = getattr(step, "prepare", None)
        if prepare is not None:
            prepare()
        for _ in range(warmup_steps):
            step()
    drop = max(1, block_steps // 10)
    out = {name: {"rounds": [], "times": []} for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            prepare = getattr(steps[name], "prepare", None)
            if prepare is not None:  # e.g. a thread count for this block
                prepare()
            time.sleep(pause_s)
            median, kept = run_block(steps[name], block_steps, drop)
            out[name]["rounds"].append(median)
            out[name]["times"] += kept
    return out


def summary(times):
    q = np.percentile(times, [25, 50, 75])
    return {"median_s": float(q[1]), "p25_s": float(q[0]), "p75_s": float(q[2]),
            "n": len(times)}


def round_ratios(result, numerator, denominator):
    """Per-round ratios ``numerator / denominator`` of ``alternate``'s round medians."""
    return [a / b for a, b in zip(result[numerator]["rounds"], result[denominator]["rounds"])]


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"
