#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv and train one step there: catches files
# the wheel leaves out (subpackages, the kernels folder, LICENSE) and metadata mistakes
# that an editable install hides.
#
# The venv is made with --system-site-packages so that it sees the dependencies already
# installed (numpy, numba, scipy, ...): no download, works offline. The wheel itself is
# installed into the venv with --force-reinstall, so it shadows any editable install of
# fastnn-torch7 in the base interpreter; the check then asserts that fastnn is imported
# from the venv, from a folder outside the source tree. A second `pip install` of the
# wheel checks that its declared dependencies are satisfied (it installs any that are
# missing from the index).
# Usage: .ci/check_wheel.sh   (PYTHON=... selects the interpreter; default python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PY" -m pip wheel -q --no-deps -w "$work/dist" .
wheel="$(ls "$work"/dist/fastnn_torch7-*.whl)"
"$PY" -m venv --system-site-packages "$work/venv"
venv_py="$work/venv/bin/python"
"$venv_py" -m pip install -q --force-reinstall --no-deps "$wheel"
"$venv_py" -m pip install -q "$wheel"

cd "$work"  # not the source tree: `import fastnn` must find the installed copy
"$venv_py" - <<'PYEOF'
import importlib.metadata as md
import os
import sys

import numpy as np

import fastnn as nn
import fastnn.kernels.cpu  # noqa: F401  (the kernels folder is installed as a subpackage)

where = os.path.realpath(nn.__file__)
assert where.startswith(os.path.realpath(sys.prefix)), f"fastnn imported from {where}"
dist = md.distribution("fastnn-torch7")
assert dist.version == nn.__version__, (dist.version, nn.__version__)
assert dist.metadata["License-Expression"] == "MIT", dist.metadata["License-Expression"]
assert any(str(f).endswith("licenses/LICENSE") for f in dist.files), "LICENSE not in the wheel"

# one training step of the homework loop
nn.manual_seed(0)
rng = np.random.default_rng(0)
X = rng.standard_normal((32, 20)).astype(np.float32)
y = rng.integers(0, 3, 32)
net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3), nn.LogSoftMax())
crit = nn.ClassNLLCriterion()
before = [p.copy() for p in net.getParameters()[0]]
net.zeroGradParameters()
loss = crit.forward(net.forward(X), y)
net.backward(X, crit.backward(net.output, y))
nn.sgd_momentum(net.getParameters(), net.getGradParameters(),
                {"learning_rate": 0.1, "momentum": 0.9}, {})
assert np.isfinite(loss), loss
assert not np.array_equal(before[0], net.getParameters()[0][0]), "the step changed nothing"
print(f"wheel OK: fastnn {nn.__version__} from {os.path.dirname(where)}, one step, loss {loss:.4f}")
PYEOF
"$work/venv/bin/fastnn" --help >/dev/null
echo "fastnn console script OK"
