"""fastnn/_runtime/checks.py: the one integer validator, and the checks that use it."""
import re

import numpy as np
import pytest

import fastnn
from fastnn._runtime.checks import positive_int
from fastnn.data import iterate_minibatches


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_accepts_integers(value):
    out = positive_int(value, "x")
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", None, np.float32(2)])
def test_rejects_the_rest_naming_what(value):
    with pytest.raises(ValueError, match=r"^Thing: n must be a positive integer, got "):
        positive_int(value, "Thing: n")


def test_minimum():
    assert positive_int(0, "p", 0) == 0
    with pytest.raises(ValueError, match="an integer >= 0"):
        positive_int(-1, "p", 0)


@pytest.mark.parametrize("make, what", [
    (lambda: fastnn.Linear(0, 3), "Linear(0, 3): n_in"),
    (lambda: fastnn.ChannelwiseScaling(2.5), "ChannelwiseScaling(2.5): n_out"),
    (lambda: fastnn.Conv2d(1, 2, 3, stride=0), "stride"),
    (lambda: fastnn.MaxPool2d(True), "kernel_size"),
    (lambda: fastnn.optim.StepDecay(0.1, step_size=0), "StepDecay: step_size"),
    (lambda: list(iterate_minibatches(np.zeros((4, 2)), None, 1.5)),
     "batch_size"),
])
def test_every_integer_option_uses_it(make, what):
    with pytest.raises(ValueError, match=re.escape(what) + ".*must be a positive integer"):
        make()


@pytest.mark.parametrize("n", [0, -2, 1.5])
def test_set_num_threads_checks_its_count(n):
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
        fastnn.set_num_threads(n)


def test_a_bad_thread_count_in_the_environment_is_named():
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTNN_NUM_THREADS="zero")
    res = subprocess.run([sys.executable, "-c", "import fastnn"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode != 0
    assert "FASTNN_NUM_THREADS must be a positive integer, got 'zero'" in res.stderr
