"""The programs tests/test_distributed.py runs, under ``mpiexec -n 2`` and as a plain
process (a world of 1): ``python mpi_worker.py SCENARIO OUT_PREFIX``. Each rank saves
what it ends with to ``OUT_PREFIX.<rank>.npz``.

Scenarios: ``sgd``/``adam`` (the homework loop over ``dist.shard``), ``sgd-overlap``
(the same with ``OverlappedAllreduce``), ``bn`` (``fit`` on a
net with BatchNormalization), ``dropout`` (masks per rank, twice with one seed),
``fresh<epochs>``/``resume<epochs>`` (``fit`` writing a checkpoint, or resuming from
it; ``OUT_PREFIX`` names it too), ``raise`` (rank 1
fails at its third step).
"""
import sys

import numpy as np

import fastnn as nn
from fastnn import distributed as dist
from fastnn.train import Callback, fit

STEPS, BATCH, D, CLASSES = 20, 128, 12, 4


def data(seed=0, twin_halves=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(STEPS * BATCH, D))
    y = rng.integers(0, CLASSES, len(X))
    if twin_halves:
        # every global batch holds 64 rows and the same rows again in another order:
        # each rank's batch statistics are then the global batch's
        half = BATCH // 2
        for s in range(0, len(X), BATCH):
            p = rng.permutation(half)
            X[s + half:s + BATCH], y[s + half:s + BATCH] = X[s:s + half][p], y[s:s + half][p]
    return X, y


def mlp(bn=False, dropout=0.0):
    nn.manual_seed(100 + dist.rank())  # different on each rank: broadcast must fix it
    layers = [nn.Linear(D, 16)]
    if bn:
        layers.append(nn.BatchNormalization(0.9))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(16, CLASSES), nn.LogSoftMax()]
    return nn.Sequential(*layers).double()


def arrays(net):
    from fastnn.train.checkpoint import module_arrays
    return {f"{i}/{name}": np.array(getattr(m, name)) for i, m, _, name in module_arrays(net)
            if getattr(m, name) is not None}


def homework(rule, config, overlap=False):
    X, y = data()
    net, crit, state = mlp(), nn.ClassNLLCriterion(), {}
    dist.broadcast_parameters(net)
    # a bucket of 64 gradients: several allreduces per backward
    overlapped = dist.OverlappedAllreduce(net, bucket_bytes=64 * 8) if overlap else None
    batches = [(X[s:s + BATCH], y[s:s + BATCH]) for s in range(0, len(X), BATCH)]
    for xb, yb in dist.shard(batches):
        net.zeroGradParameters()
        out = net.forward(xb)
        crit.forward(out, yb)
        if overlapped is not None:
            overlapped.begin()
            net.backward(xb, crit.backward(out, yb))
            overlapped.end()
        else:
            net.backward(xb, crit.backward(out, yb))
            dist.allreduce_gradients(net)
        rule(net.getParameters(), net.getGradParameters(), config, state)
    out = arrays(net)
    if overlapped is not None:
        out["buckets"] = np.array(overlapped.buckets)
    return out


def bn():
    X, y = data(twin_halves=True)
    net = mlp(bn=True)
    fit(net, nn.ClassNLLCriterion(), X, y, optimizer="sgd",
        config={"learning_rate": 0.1, "momentum": 0.9}, epochs=1, batch_size=BATCH,
        shuffle=False, progress=False, log=None, seed=0,
        distributed=dist.Distributed(overlap=True, bucket_bytes=64 * 8))
    out = arrays(net)
    # BatchNormalization on the input, different rows on each rank: the moving means,
    # averaged over the ranks at the epoch's end, are the single process's
    X, y = data(seed=1)
    first = nn.Sequential(nn.BatchNormalization(0.9), nn.Linear(D, CLASSES),
                          nn.LogSoftMax()).double()
    fit(first, nn.ClassNLLCriterion(), X, y, epochs=1, batch_size=BATCH, progress=False,
        log=None, seed=0, distributed=True)
    out["input_bn_moving_mean"] = np.array(first.modules[0].moving_mean)
    return out


class Masks(Callback):
    """The zero pattern of the Dropout layer's output at the first step of each fit."""

    def __init__(self, layer):
        self.layer, self.first = layer, []

    def on_loss(self, run, loss):
        if run.steps_done == 0:
            self.first.append(np.array(self.layer.output) == 0)


def dropout():
    X, y = data()
    X = np.abs(X) + 1.0  # no zeros of its own: the Dropout output's zeros are the mask
    out = {}
    for attempt in range(2):
        nn.manual_seed(0)
        drop = nn.Dropout(0.5)
        net = nn.Sequential(drop, nn.Linear(D, CLASSES), nn.LogSoftMax()).double()
        masks = Masks(drop)
        fit(net, nn.ClassNLLCriterion(), X, y, epochs=1, batch_size=BATCH, max_steps=3,
            progress=False, log=None, seed=7, distributed=True, callbacks=[masks])
        out[f"mask{attempt}"] = masks.first[0]
        out.update({f"run{attempt}/{k}": v for k, v in arrays(net).items()})
    return out


def resume(prefix, epochs, from_checkpoint):
    X, y = data()
    net = mlp()
    ckpt = prefix + ".ckpt.npz"
    h = fit(net, nn.ClassNLLCriterion(), X, y, config={"learning_rate": 0.05, "momentum": 0.9},
            epochs=epochs, batch_size=BATCH, progress=False, seed=3, distributed=True,
            checkpoint=ckpt, resume=ckpt if from_checkpoint else None)
    out = arrays(net)
    out["train_loss"] = np.array(h.train_loss)
    return out


class FailAtThirdStep(Callback):
    def on_step_end(self, run, loss):
        if dist.rank() == 1 and run.steps_done == 3:
            raise ValueError("rank 1 fails on purpose")


def fail():
    X, y = data()
    fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=50, batch_size=BATCH, progress=False,
        log=None, distributed=True, callbacks=[FailAtThirdStep()])


def main(scenario, prefix):
    dist.init()
    if scenario == "sgd":
        out = homework(nn.sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9})
    elif scenario == "sgd-overlap":
        out = homework(nn.sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9}, overlap=True)
    elif scenario == "adam":
        out = homework(nn.adam_optimizer, {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                                           "epsilon": 1e-8})
    elif scenario == "bn":
        out = bn()
    elif scenario == "dropout":
        out = dropout()
    elif scenario.startswith(("fresh", "resume")):  # fresh<epochs>, resume<epochs>
        out = resume(prefix, int(scenario[-1]), scenario.startswith("resume"))
    elif scenario == "raise":
        fail()
        return
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    out["world_size"] = np.array(dist.size())
    np.savez(f"{prefix}.{dist.rank()}.npz", **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
