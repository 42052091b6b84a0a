"""Start-up cost, each sample in a fresh interpreter (``timeraw_``): ``import fastnn``,
build the homework MLP, run the first training step (batch 32).

* ``warm``: Numba's on-disk cache already holds every kernel (setup runs the same code
  once in-process), so the first step only loads compiled code.
* ``cold``: ``NUMBA_CACHE_DIR`` points to a fresh empty temporary folder (set in the
  timed process before ``import fastnn``; removed at its exit), so every kernel the step
  uses is compiled from scratch; this is the first run after install / after a kernel edit.
* ``warm-refresh``: ``warm`` with ``FASTNN_NUMBA_REFRESH=1``, Numba's own loading of
  cached kernels, which first refreshes its whole CPU context (``kernels/cpu/_jit.py``
  skips that): the ablation for that choice.

``track_peak_rss_bytes`` reports the child process's own peak RSS (VmHWM) for the
same code.
"""
import os
import subprocess
import sys
import textwrap

COLD_SETUP = """
import atexit, os, shutil, tempfile
_cache = tempfile.mkdtemp(prefix='fastnn-numba-cold-')
os.environ['NUMBA_CACHE_DIR'] = _cache
atexit.register(shutil.rmtree, _cache, True)
"""

REFRESH_SETUP = """
import os
os.environ['FASTNN_NUMBA_REFRESH'] = '1'
"""

CACHE_SETUP = {"warm": "", "warm-refresh": REFRESH_SETUP, "cold": COLD_SETUP}

IMPORT = """
import fastnn
"""

FIRST_STEP = """
import numpy as np
import fastnn
from fastnn import ClassNLLCriterion, Linear, LogSoftMax, ReLU, Sequential, sgd_momentum
net = Sequential(Linear(784, 500), ReLU(), Linear(500, 300), ReLU(), Linear(300, 100),
                 ReLU(), Linear(100, 10), LogSoftMax())
criterion = ClassNLLCriterion()
config = {'learning_rate': 0.01, 'momentum': 0.9}
state = {}
x = np.random.default_rng(0).random((32, 784), dtype=np.float32)
y = np.arange(32) % 10
net.zeroGradParameters()
out = net.forward(x)
criterion.forward(out, y)
net.backward(x, criterion.backward(out, y))
sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
"""

# VmHWM, not getrusage's ru_maxrss: Linux carries the parent's RSS high-water mark
# across fork+exec into the child's ru_maxrss, so that one is never below the (large)
# benchmark process's own RSS.
PRINT_RSS = """
try:
    with open('/proc/self/status') as f:
        print([int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM:')][0])
except OSError:
    import resource, sys
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
          * (1 if sys.platform == 'darwin' else 1024))
"""


def _warm_cache():
    exec(textwrap.dedent(FIRST_STEP), {})


class Startup:
    params = [["warm", "warm-refresh", "cold"]]
    param_names = ["numba_cache"]
    number = 1
    repeat = (1, 5, 120.0)
    warmup_time = 0
    timeout = 600

    def setup(self, numba_cache):
        if os.environ.get("NUMBA_DISABLE_JIT") == "1":
            raise NotImplementedError("NUMBA_DISABLE_JIT is set")
        _warm_cache()

    def _code(self, numba_cache, stmt):
        return (stmt, CACHE_SETUP[numba_cache])

    def timeraw_import(self, numba_cache):
        return self._code(numba_cache, IMPORT)

    def timeraw_import_build_first_step(self, numba_cache):
        return self._code(numba_cache, FIRST_STEP)

    def track_peak_rss_bytes(self, numba_cache):
        code = CACHE_SETUP[numba_cache] + FIRST_STEP + PRINT_RSS
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True).stdout
        return int(out.split()[-1])

    track_peak_rss_bytes.unit = "bytes"
