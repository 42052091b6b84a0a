"""fastnn/_runtime/parallel.py: Conv2d, MaxPool2d (and Linear inside a net with them) split their
batch over fastnn's threads. The split must not change results beyond the rounding of
the parameter-gradient sums, must re-raise a part's error, and must restore BLAS."""
import numpy as np
import pytest

import fastnn
from fastnn import (Conv2d, CrossEntropyCriterion, Flatten, Linear, LogSoftMax, MaxPool2d,
                    ReLU, Sequential)
from fastnn._runtime import parallel as _parallel
from fastnn.nested import flatten


@pytest.fixture
def threads():
    before = _parallel.threads()
    yield _parallel.set_threads
    _parallel.set_threads(before)


def small_cnn(seed=0):
    fastnn.manual_seed(seed)
    return Sequential(Conv2d(2, 6, 3), ReLU(), MaxPool2d(2), Conv2d(6, 8, 3, stride=2),
                      Flatten(), Linear(8 * 2 * 2, 10), ReLU(), Linear(10, 5))


def run_step(net, x, y):
    crit = CrossEntropyCriterion()
    net.zeroGradParameters()
    out = net.forward(x).copy()
    crit.forward(out, y)
    gi = net.backward(x, crit.backward(out, y)).copy()
    return out, gi, [g.copy() for g in flatten(net.getGradParameters())]


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_matches_one_thread(threads, n_threads, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 2, 9, 9)).astype(dtype)  # 7 images: uneven parts
    y = rng.integers(0, 5, 7)
    threads(1)
    ref = run_step(small_cnn().type(dtype), x, y)
    threads(n_threads)
    net = small_cnn().type(dtype)
    got = run_step(net, x, y)
    assert all(m.split_batch for m in net.modules if isinstance(m, Linear))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got[0], ref[0], **tol)
    np.testing.assert_allclose(got[1], ref[1], **tol)
    for g, r in zip(got[2], ref[2]):
        np.testing.assert_allclose(g, r, **tol)


def test_split_results_do_not_depend_on_timing(threads):
    threads(2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 2, 9, 9)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    first = run_step(small_cnn(), x, y)
    for _ in range(3):
        again = run_step(small_cnn(), x, y)
        for a, b in zip(first[2], again[2]):
            np.testing.assert_array_equal(a, b)


def test_an_mlp_leaves_its_gemms_to_blas():
    net = Sequential(Linear(4, 3), ReLU(), Linear(3, 2), LogSoftMax())
    net.forward(np.zeros((2, 4), np.float32))
    assert not any(m.split_batch for m in net.modules if isinstance(m, Linear))


def test_a_part_error_is_raised_and_blas_restored(threads):
    threads(2)
    libs = _parallel._blas_controllers()
    before = [lib.num_threads for lib in libs]

    def fn(part, lo, hi):
        if part == 1:
            raise RuntimeError(f"part {part} rows {lo}:{hi}")
    with pytest.raises(RuntimeError, match="part 1 rows 5:10"):
        _parallel.run(fn, _parallel.parts(10))
    assert [lib.num_threads for lib in libs] == before


def test_parts_cover_the_batch(threads):
    threads(3)
    assert _parallel.parts(10) == ((0, 3), (3, 6), (6, 10))
    assert _parallel.parts(2) == ((0, 1), (1, 2))
    assert _parallel.parts(1) == ((0, 1),)
    assert _parallel.parts(10, work=5, min_work=6) == ((0, 10),)
    threads(1)
    assert _parallel.parts(10) == ((0, 10),)


def test_concurrent_callers_restore_the_blas_limit(threads):
    import threading
    threads(2)
    libs = _parallel._blas_controllers()
    before = [lib.num_threads for lib in libs]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 2, 9, 9)).astype(np.float32)
    nets = [small_cnn(seed) for seed in range(4)]
    expected = [net.forward(x).copy() for net in nets]
    results = [None] * len(nets)

    def work(k):
        for _ in range(5):
            results[k] = nets[k].forward(x).copy()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(len(nets))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    for r, e in zip(results, expected):
        np.testing.assert_array_equal(r, e)
    assert [lib.num_threads for lib in libs] == before


def _split_forward_in_child(queue):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 2, 9, 9)).astype(np.float32)
    queue.put(small_cnn().forward(x).sum())


def test_a_forked_child_can_split(threads):
    """The worker threads do not survive fork(): the child starts its own."""
    import multiprocessing
    threads(2)
    rng = np.random.default_rng(4)
    small_cnn().forward(rng.standard_normal((8, 2, 9, 9)).astype(np.float32))  # pool up
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_split_forward_in_child, args=(queue,))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung on the split")
    assert child.exitcode == 0
    assert np.isfinite(queue.get(timeout=10))
