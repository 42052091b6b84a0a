"""Nets that are dropped are freed: nothing global keeps a net, its leaves or its flat
parameter buffers alive (the container hands out its flat-buffer record with its
parameter lists instead). RSS is measured in a child process, whose allocations are
its own."""
import gc
import json
import subprocess
import sys
import weakref

import numpy as np

import fastnn as nn

RSS_LOOP = """
import gc, json, resource, sys
import numpy as np
import fastnn as nn

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20

def build_train_drop(i):
    net = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                        nn.Linear(1024, 10), nn.LogSoftMax())
    opt = nn.optim.SGD(net, learning_rate=0.01, momentum=0.9)
    x = np.ones((4, 784), np.float32)
    crit = nn.ClassNLLCriterion()
    for _ in range(2):
        net.zeroGradParameters()
        net.backward(x, crit.backward(net.forward(x), np.arange(4)))
        opt.step()
    if i % 2:  # dtype switches rebuild the flat buffers
        net.double()
        net.getParameters()
        net.float()
        net.getParameters()

for i in range(5):  # warm-up: kernels loaded, allocator pools settled
    build_train_drop(i)
gc.collect()
before = rss_mib()
for i in range(60):
    build_train_drop(i)
gc.collect()
print(json.dumps({"before": before, "after": rss_mib()}))
"""


def test_sixty_dropped_nets_keep_rss_flat():
    r = subprocess.run([sys.executable, "-c", RSS_LOOP], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rss = json.loads(r.stdout.strip().splitlines()[-1])
    grown = rss["after"] - rss["before"]
    assert grown < 100, f"RSS grew by {grown:.0f} MiB over 60 nets of 784-1024-1024-10: {rss}"


def test_trained_nets_do_not_survive_gc():
    X = np.random.default_rng(0).standard_normal((64, 20)).astype(np.float32)
    y = np.arange(64) % 4
    refs = []
    for i in range(20):
        net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4), nn.LogSoftMax())
        nn.fit(net, nn.ClassNLLCriterion(), X, y, epochs=1, batch_size=16, progress=False,
               log=None, seed=i, optimizer="adam" if i % 2 else "sgd")
        if i % 3 == 0:
            net.double()
            net.getParameters()
        refs.append(weakref.ref(net))
        refs.extend(weakref.ref(m) for m in net.modules)
        refs.append(weakref.ref(net.flatten_parameters()["params"]))
        del net
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert not alive, f"{len(alive)} objects survived, e.g. {alive[0]!r}"
