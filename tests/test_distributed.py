"""fastnn.distributed: data parallelism over MPI, checked by launching ``mpiexec -n 2``
(tests/mpi_worker.py) against the same program as a world of 1.

Every launch has a timeout, so a hung rank fails its test instead of the CI job. The
MPI tests skip only when mpi4py or mpiexec is missing (``pip install '.[mpi]'``).
"""
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastnn._optional import DISTRIBUTION

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
TIMEOUT = 120


def _mpiexec():
    for folder in (os.path.dirname(sys.executable),
                   os.path.dirname(os.path.realpath(sys.executable))):
        path = os.path.join(folder, "mpiexec")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("mpiexec")


def _have_mpi4py():
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not _have_mpi4py(),
                               reason="mpi4py or mpiexec missing (pip install '.[mpi]')")


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "PMIX_", "MV2_"))}
    env["FASTNN_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _run(args, ranks=None, timeout=TIMEOUT, check=True, **env):
    """Run ``python args`` under ``mpiexec -n ranks`` (plainly when ranks is None)."""
    cmd = [sys.executable] + list(args)
    if ranks is not None:
        cmd = [MPIEXEC, "-n", str(ranks)] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env))
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _scenario(tmp_path, name, ranks):
    prefix = str(tmp_path / f"{name}-{ranks or 1}")
    _run([WORKER, name, prefix], ranks)
    return [dict(np.load(f"{prefix}.{r}.npz")) for r in range(ranks or 1)]


def _assert_close(a, b, tol):
    keys = sorted(k for k in a if k != "world_size")
    assert keys == sorted(k for k in b if k != "world_size")
    for k in keys:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=tol, err_msg=k)


@needs_mpi
@pytest.mark.parametrize("rule", ["sgd", "adam", "sgd-overlap"])
def test_two_ranks_at_64_match_one_at_128(tmp_path, rule):
    two = _scenario(tmp_path, rule, 2)
    one = _scenario(tmp_path, rule, None)
    assert int(two[0]["world_size"]) == 2 and int(one[0]["world_size"]) == 1
    if rule == "sgd-overlap":  # one allreduce per Linear, each started during backward
        assert int(two[0].pop("buckets")) == 2 and int(two[1].pop("buckets")) == 2
        one[0].pop("buckets")
    _assert_close(two[0], two[1], 0.0)  # the ranks end with the same weights, bitwise
    _assert_close(two[0], one[0], 1e-6)


@needs_mpi
def test_batchnorm_net_through_fit(tmp_path):
    # each rank's half of a global batch holds the same rows as the other's, so per-rank
    # train-mode statistics are the global batch's (README, "Distributed training")
    two = _scenario(tmp_path, "bn", 2)
    one = _scenario(tmp_path, "bn", None)
    assert any(k.endswith("/moving_mean") for k in one[0])
    _assert_close(two[0], two[1], 0.0)
    _assert_close(two[0], one[0], 1e-6)  # input_bn_moving_mean: averaged over the ranks


@needs_mpi
def test_dropout_masks_differ_across_ranks_and_repeat_with_the_seed(tmp_path):
    r0, r1 = _scenario(tmp_path, "dropout", 2)
    assert r0["mask0"].shape == r1["mask0"].shape == (64, 12)
    assert not np.array_equal(r0["mask0"], r1["mask0"])
    for r in (r0, r1):
        np.testing.assert_array_equal(r["mask0"], r["mask1"])
    params = [k for k in r0 if k.startswith("run0/")]
    assert params
    for k in params:  # different masks, averaged gradients: the same weights
        np.testing.assert_array_equal(r0[k], r1[k])


@needs_mpi
def test_checkpoint_of_two_ranks_resumes_on_one(tmp_path):
    prefix = str(tmp_path / "ckpt")
    r = _run([WORKER, "fresh1", prefix], 2)
    assert r.stdout.count("epoch 1/1") == 1, r.stdout  # rank 0 logs, alone
    _run([WORKER, "resume2", prefix], None)
    resumed = dict(np.load(f"{prefix}.0.npz"))
    straight = _scenario(tmp_path, "fresh2", None)[0]
    assert len(resumed["train_loss"]) == 2
    _assert_close(resumed, straight, 1e-6)


@needs_mpi
def test_one_rank_raising_aborts_the_job_quickly(tmp_path):
    t0 = time.monotonic()
    r = _run([WORKER, "raise", str(tmp_path / "x")], 2, timeout=60, check=False)
    assert r.returncode != 0
    assert "rank 1 fails on purpose" in r.stderr
    assert "aborting all ranks" in r.stderr
    assert time.monotonic() - t0 < 60


@needs_mpi
@pytest.mark.slow
def test_cli_train_mnist_distributed(tmp_path):
    data = os.environ.get("FASTNN_DATA")
    if not data or not os.path.isdir(os.path.join(data, "mnist")):
        pytest.skip("real MNIST not available (set FASTNN_DATA)")
    r = _run(["-m", "fastnn", "train", "mnist", "--distributed", "--epochs", "1",
              "--limit-train", "4000", "--limit-test", "1000", "--no-progress", "--no-download",
              "--out", str(tmp_path)], 2)
    assert r.stdout.count("test accuracy:") == 1, r.stdout
    acc = float(r.stdout.split("test accuracy:")[1].split()[0])
    assert acc > 0.5  # one small epoch (a world of 1 gets 0.70 here); chance is 0.1
    assert os.path.exists(tmp_path / "mlp.npz")


def test_world_of_one_without_a_launcher():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import fastnn as nn
        from fastnn import distributed as dist
        dist.init()
        assert (dist.rank(), dist.size(), dist.comm()) == (0, 1, None)
        assert "mpi4py" not in sys.modules
        net = nn.Sequential(nn.Linear(3, 2), nn.LogSoftMax())
        net.forward(np.ones((4, 3))); net.backward(np.ones((4, 3)), np.ones((4, 2)))
        before = [np.array(g) for g in net.getGradParameters()[0]]
        dist.broadcast_parameters(net); dist.allreduce_gradients(net); dist.average_buffers(net)
        assert all(np.array_equal(a, b) for a, b in zip(before, net.getGradParameters()[0]))
        batches = [(np.arange(5), np.arange(5))]
        assert [tuple(map(list, b)) for b in dist.shard(batches)] == [([0, 1, 2, 3, 4],) * 2]
        print("ok")
    """)
    r = _run(["-c", code])
    assert r.stdout.strip() == "ok"


def _fake_mpi4py(tmp_path, body):
    pkg = tmp_path / "fake" / "mpi4py"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "MPI.py").write_text(body)
    return str(tmp_path / "fake")


INIT = "from fastnn import distributed as dist\ndist.init()\nprint(dist.rank(), dist.size())"


def test_broken_mpi_install_names_the_extra(tmp_path):
    fake = _fake_mpi4py(tmp_path, "raise ImportError('libmpi.so.12: cannot open shared "
                                  "object file')\n")
    r = _run(["-c", INIT], check=False, PMI_SIZE="2", PMI_RANK="0",
             PYTHONPATH=os.pathsep.join([fake, os.path.dirname(HERE)]))
    assert r.returncode != 0
    assert "DistributedError" in r.stderr and f"{DISTRIBUTION}[mpi]" in r.stderr
    assert "libmpi.so.12" in r.stderr


def test_launched_without_mpi4py(tmp_path):
    # sys.modules["mpi4py"] = None: the import fails as if mpi4py were not installed
    code = "import sys\nsys.modules['mpi4py'] = None\n" + INIT
    r = _run(["-c", code], check=False, PMI_SIZE="2", PMI_RANK="1")
    assert r.returncode != 0 and f"{DISTRIBUTION}[mpi]" in r.stderr
    assert "not installed" in r.stderr
    r = _run(["-c", code], PMI_SIZE="1", PMI_RANK="0")
    assert r.stdout.split() == ["0", "1"]


def test_local_rows_cover_the_batch():
    from fastnn.distributed import local_rows
    for n in (2, 7, 128, 129):
        for s in (1, 2, 3):
            parts = [range(n)[local_rows(n, r, s)] for r in range(s)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_flat_base_finds_the_containers_gradient_buffer():
    import fastnn as nn
    from fastnn.distributed import flat_base
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    grads = net.getGradParameters()
    base = flat_base(grads)
    assert base is not None and base.size == 3 * 4 + 4 + 4 * 2 + 2
    assert np.shares_memory(base, grads[0][0]) and np.shares_memory(base, grads[2][1])
    assert flat_base(grads[2] + grads[0]) is None  # out of order
    assert flat_base(grads[0]) is None  # part of the buffer only
    assert flat_base([np.zeros(3), np.zeros(2)]) is None
