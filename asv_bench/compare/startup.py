"""Start-up, each in a fresh subprocess: import + build the MLP + first training step
(batch 32): the wall time the parent sees, the time inside the child and the child's
peak RSS; fastnn with a warm Numba cache, with Numba's own loading (refresh), with an
empty cache, and torch (no compile cache in eager mode)."""
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time


# The same first step the asv start-up benchmark times (benchmarks/startup.py imports
# only the standard library, so this keeps the parent process small).
from benchmarks.startup import FIRST_STEP as FASTNN_FIRST_STEP  # noqa: E402

TORCH_FIRST_STEP = """
import numpy as np
import torch
from torch import nn
torch.set_num_threads(2)
model = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 300), nn.ReLU(),
                      nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10), nn.LogSoftmax(dim=1))
loss_fn = nn.NLLLoss()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.from_numpy(np.random.default_rng(0).random((32, 784), dtype=np.float32))
y = torch.arange(32) % 10
opt.zero_grad()
loss = loss_fn(model(x), y)
loss.backward()
opt.step()
"""

CHILD = """
import time
_t0 = time.perf_counter()
{body}
print('INPROC', time.perf_counter() - _t0)
try:
    with open('/proc/self/status') as _f:
        print('VMHWM', [int(l.split()[1]) * 1024 for l in _f if l.startswith('VmHWM:')][0])
except OSError:
    pass
"""


def run_child_rusage(body, env_extra=None):
    """(wall seconds seen by the parent, seconds inside the child, the child's peak RSS
    in bytes, the child's ru_maxrss in bytes from os.wait4).

    The peak RSS is the child's VmHWM (/proc/self/status, read at its end). The rusage
    number (what getrusage(RUSAGE_CHILDREN) reports) is kept for reference only: Linux
    carries the parent's RSS high-water mark across fork+exec into the child's
    ru_maxrss, so it is never below this process's own RSS; ``startup`` therefore runs
    before this process imports torch or fastnn, which keeps that floor low."""
    env = dict(os.environ)
    env.update(env_extra or {})
    code = CHILD.format(body=textwrap.dedent(body))
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out,
                                stderr=subprocess.STDOUT, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"start-up child failed:\n{text}")
    inproc = float(text.split("INPROC")[-1].split()[0])
    ru_maxrss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    hwm = int(text.split("VMHWM")[-1].split()[0]) if "VMHWM" in text else ru_maxrss
    return wall, inproc, hwm, ru_maxrss


def startup(opts):
    cases = []
    run_child_rusage(FASTNN_FIRST_STEP)  # make sure the default cache is warm
    cases.append(("fastnn, warm Numba cache", FASTNN_FIRST_STEP, None, opts.startup_reps))
    cases.append(("fastnn, warm, Numba's refresh", FASTNN_FIRST_STEP, "refresh",
                  opts.startup_reps))
    cases.append(("fastnn, empty Numba cache", FASTNN_FIRST_STEP, "cold",
                  max(1, opts.startup_reps // 2)))
    if not opts.no_torch:
        run_child_rusage(TORCH_FIRST_STEP)
        cases.append(("torch", TORCH_FIRST_STEP, None, opts.startup_reps))
    results = []
    for label, body, cache, reps in cases:
        walls, inprocs, rsss, rus = [], [], [], []
        for _ in range(reps):
            env = None
            tmp = None
            if cache == "cold":
                tmp = tempfile.mkdtemp(prefix="fastnn-numba-cold-")
                env = {"NUMBA_CACHE_DIR": tmp}
            elif cache == "refresh":  # the ablation of kernels/cpu/_jit.py
                env = {"FASTNN_NUMBA_REFRESH": "1"}
            try:
                w, i, m, ru = run_child_rusage(body, env)
            finally:
                if tmp:
                    import shutil
                    shutil.rmtree(tmp, ignore_errors=True)
            walls.append(w)
            inprocs.append(i)
            rsss.append(m)
            rus.append(ru)
        res = {"case": label, "wall_s": statistics.median(walls),
               "in_process_s": statistics.median(inprocs),
               "peak_rss_bytes": int(statistics.median(rsss)),
               "ru_maxrss_bytes": int(statistics.median(rus)), "reps": reps}
        results.append(res)
        print(f"  {label:30s} wall {res['wall_s']:7.3f} s   import->first step done "
              f"{res['in_process_s']:7.3f} s   peak RSS {res['peak_rss_bytes'] / 2**20:7.1f} MiB",
              flush=True)
    return results


def markdown(results):
    lines = ["| start-up (import + build MLP + first step) | wall | in process | peak RSS |",
             "| --- | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['case']} | {r['wall_s']:.2f} s | {r['in_process_s']:.2f} s | "
                     f"{r['peak_rss_bytes'] / 2**20:.0f} MiB |")
    return "\n".join(lines)
