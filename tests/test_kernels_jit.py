"""kernels/cpu/_jit.py: cached kernels load without Numba's context refresh, and give
the same results as with it; a kernel that misses the cache still compiles."""
import glob
import importlib
import json
import os
import subprocess
import sys

import numba
import numpy as np

import fastnn.kernels.cpu as cpu
from fastnn.kernels.cpu import _jit

# A child process: counts Numba's refreshes, runs two training steps of a net that uses
# most kernel families (fused conv and linear, pool, batchnorm, dropout, log-softmax,
# NLL, sgd-momentum, zeroing) and a kernel that raises, and prints what it saw.
CHILD = """
import json
import numpy as np
from numba.core.registry import cpu_target
context_class = type(cpu_target.target_context)
refreshes = []
original = context_class.refresh
def counting(self):
    refreshes.append(1)
    return original(self)
context_class.refresh = counting

import fastnn
from fastnn import *
from fastnn.conv import Conv2d, Flatten, MaxPool2d
from fastnn.kernels.cpu import elementwise
fastnn.manual_seed(0)
net = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(),
                 Linear(64, 16), BatchNormalization(0.1), ChannelwiseScaling(16), ReLU(),
                 Dropout(0.3),
                 Linear(16, 10), LogSoftMax())
criterion = ClassNLLCriterion()
rng = np.random.default_rng(0)
x = rng.random((6, 1, 8, 8), dtype=np.float32)
y = np.arange(6) % 10
config, state, losses = {"learning_rate": 0.1, "momentum": 0.9}, {}, []
for _ in range(2):
    net.zeroGradParameters()
    out = net.forward(x)
    losses.append(criterion.forward(out, y))
    net.backward(x, criterion.backward(out, y))
    sgd_momentum(net.getParameters(), net.getGradParameters(), config, state)
try:
    elementwise.copy(np.zeros(3), np.zeros(4))
    raised = None
except ValueError as exc:
    raised = str(exc)
params = np.concatenate([p.ravel() for layer in net.getParameters() for p in layer])
print(json.dumps({"refreshes": len(refreshes), "losses": losses, "raised": raised,
                  "params": params.astype(float).tolist()}))
"""


# The same with only two quick-to-compile kernels, for an empty cache.
SMALL_CHILD = CHILD[:CHILD.index("import fastnn")] + """
from fastnn.kernels.cpu import elementwise, optim
p, g, v = np.ones(5, np.float32), np.full(5, 2, np.float32), np.zeros(5, np.float32)
elementwise.fill(v, 0.5)
optim.sgd_momentum_update(g, p, v, np.float32(0.1), np.float32(0.9))
print(json.dumps({"refreshes": len(refreshes), "params": p.astype(float).tolist()}))
"""


def _child(code=CHILD, **env):
    full = dict(os.environ)
    full.pop("FASTNN_NUMBA_REFRESH", None)
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_warm_cache_loads_without_refresh_and_computes_the_same():
    first = _child()                           # fills the cache where it was cold
    warm = _child()
    refreshing = _child(FASTNN_NUMBA_REFRESH="1")
    assert warm["refreshes"] == 0
    assert refreshing["refreshes"] > 0
    for run in (first, refreshing):
        assert run["losses"] == warm["losses"]
        assert run["params"] == warm["params"]
        assert run["raised"] == warm["raised"]
    assert "differ in size" in warm["raised"]  # an exception from loaded code still works
    assert np.isfinite(warm["losses"]).all()


def test_an_empty_cache_compiles_through_numbas_own_path(tmp_path):
    cold = _child(SMALL_CHILD, NUMBA_CACHE_DIR=str(tmp_path))
    assert cold["refreshes"] > 0               # the compiles refreshed
    assert glob.glob(str(tmp_path / "**" / "*.nbi"), recursive=True)
    warm = _child(SMALL_CHILD, NUMBA_CACHE_DIR=str(tmp_path))
    assert warm["refreshes"] == 0
    assert warm["params"] == cold["params"]
    np.testing.assert_allclose(warm["params"], 1 - (0.9 * 0.5 + 0.1 * 2), rtol=1e-6)


def test_every_cpu_kernel_loads_without_refresh():
    folder = os.path.dirname(cpu.__file__)
    seen = 0
    for path in sorted(glob.glob(os.path.join(folder, "[!_]*.py"))):
        module = importlib.import_module(f"fastnn.kernels.cpu.{os.path.basename(path)[:-3]}")
        for value in vars(module).values():
            if isinstance(value, numba.core.registry.CPUDispatcher) and \
                    value.py_func.__module__ == module.__name__:
                assert type(value._cache).__name__ == "_CacheLoadingWithoutRefresh", value
                seen += 1
    assert seen > 20


def test_it_leaves_other_dispatchers_alone():
    plain = numba.njit(lambda a: a + 1)        # not cached: nothing to swap
    assert not _jit.loads_without_refresh(plain)
    assert plain(np.float32(1)) == 2
