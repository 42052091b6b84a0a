"""fastnn.diagnose: each code of the battery provoked by one mistake; none on a healthy
MNIST MLP; the caller's net, criterion and random stream untouched."""
import numpy as np
import pytest

import fastnn as nn
from fastnn.diagnosis import CODES
from diagnosis_data import mlp, mnist_subset

#: code -> the test here that provokes it (test_diagnosis_findings checks the union).
PROVOKED = {
    "input_scale": "test_pixels_0_255_with_softmax_and_class_nll",
    "saturated_softmax": "test_pixels_0_255_with_softmax_and_class_nll",
    "input_nonfinite": "test_nan_inputs",
    "constant_inputs": "test_constant_inputs",
    "labels_invalid": "test_one_based_labels",
    "criterion_input_mismatch": "test_logsoftmax_into_unstable",
    "gradcheck_failed": "test_wrong_backward_named",
    "labels_unlearnable": "test_labels_shuffled_separately",
    "updates_too_small": "test_learning_rate_1e6",
    "diverging": "test_learning_rate_far_too_large",
    "dead_units": "test_dead_units",
    "nonfinite_loss": "test_nonfinite_weights",
}


@pytest.fixture(scope="module")
def data():
    return mnist_subset()


@pytest.fixture(scope="module")
def healthy(data):
    return nn.diagnose(mlp(), nn.ClassNLLCriterion(), *data, learning_rate=0.1)


@pytest.mark.parametrize("code", sorted(CODES))
def test_healthy_mnist_mlp_reports_nothing(healthy, code):
    assert code not in healthy.codes, str(healthy)


def test_report_lists_measurements(healthy):
    text = str(healthy)
    assert text.startswith("no findings")
    assert "learning-rate probe" in text and "held-out accuracy" in text


def test_net_criterion_and_rng_untouched(data):
    X, y = data
    net, crit = mlp(), nn.ClassNLLCriterion()
    before = [np.array(p) for p in sum(net.getParameters(), [])]
    np.random.seed(123)
    expected = np.random.random(5)
    np.random.seed(123)
    nn.diagnose(net, crit, X[:300], y[:300], learning_rate=0.1)
    np.testing.assert_array_equal(np.random.random(5), expected)
    for a, b in zip(before, sum(net.getParameters(), [])):
        np.testing.assert_array_equal(a, b)
    assert crit.output is None


def test_pixels_0_255_with_softmax_and_class_nll(data):
    """The seed notebook's own set-up: no ZeroDivisionError, the cause named."""
    X, y = data
    d = nn.diagnose(mlp(nn.SoftMax), nn.ClassNLLCriterion(), X * 255, y, learning_rate=0.1)
    assert {"input_scale", "saturated_softmax"} <= d.codes
    assert str(d).index("input_scale") > 0 and "X / 255" in str(d)


def test_nan_inputs(data):
    X, y = data
    X = X.copy()
    X[5, 5] = np.nan
    assert nn.diagnose(mlp(), nn.ClassNLLCriterion(), X, y).codes == {"input_nonfinite"}


def test_constant_inputs(data):
    X, y = data
    X = X.copy()
    X[:, 20:] = 0.5
    assert "constant_inputs" in nn.diagnose(mlp(), nn.ClassNLLCriterion(), X, y).codes


def test_one_based_labels(data):
    X, y = data
    d = nn.diagnose(mlp(), nn.ClassNLLCriterion(), X, y + 1)
    assert d.codes == {"labels_invalid"} and "subtract 1" in str(d)


def test_logsoftmax_into_unstable(data):
    d = nn.diagnose(mlp(), nn.ClassNLLCriterionUnstable(), *data, learning_rate=0.1)
    assert "criterion_input_mismatch" in d.codes


def test_softmax_into_cross_entropy(data):
    d = nn.diagnose(mlp(nn.SoftMax), nn.CrossEntropyCriterion(), *data, learning_rate=0.1)
    assert "criterion_input_mismatch" in d.codes


class BadScale(nn.Module):
    """y = 2x with a backward that forgets the 2."""

    def updateOutput(self, input):
        self.output = 2 * np.asarray(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = np.asarray(gradOutput)
        return self.gradInput

    def __repr__(self):
        return "BadScale"


def test_wrong_backward_named(data):
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 50), BadScale(), nn.ReLU(), nn.Linear(50, 10),
                        nn.LogSoftMax())
    d = nn.diagnose(net, nn.ClassNLLCriterion(), *data, learning_rate=0.1)
    failed = [f for f in d.findings if f.code == "gradcheck_failed"]
    assert [f.module for f in failed] == ["BadScale"]


def test_labels_shuffled_separately(data):
    X, y = data
    d = nn.diagnose(mlp(), nn.ClassNLLCriterion(), X, np.random.default_rng(1).permutation(y),
                    learning_rate=0.1)
    assert "labels_unlearnable" in d.codes


def test_learning_rate_1e6(data):
    d = nn.diagnose(mlp(), nn.ClassNLLCriterion(), *data, learning_rate=1e-6)
    assert "updates_too_small" in d.codes


def test_learning_rate_far_too_large(data):
    d = nn.diagnose(mlp(), nn.ClassNLLCriterion(), *data, learning_rate=50.0)
    assert "diverging" in d.codes


def test_dead_units(data):
    net = mlp()
    net.modules[0].b[:] = -10.0
    d = nn.diagnose(net, nn.ClassNLLCriterion(), *data, learning_rate=0.1)
    assert [f.module for f in d.findings if f.code == "dead_units"] == ["ReLU"]


def test_nonfinite_weights(data):
    net = mlp()
    net.modules[2].W[3, 3] = np.inf
    d = nn.diagnose(net, nn.ClassNLLCriterion(), *data)
    [finding] = [f for f in d.findings if f.code == "nonfinite_loss"]
    assert finding.module == "Linear 100 -> 10"


def test_adam_and_unknown_optimizer(data):
    X, y = data
    d = nn.diagnose(mlp(), nn.ClassNLLCriterion(), X, y, learning_rate=1e-3, optimizer="adam")
    assert not d.codes, str(d)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        nn.diagnose(mlp(), nn.ClassNLLCriterion(), X, y, optimizer="rmsprop")
