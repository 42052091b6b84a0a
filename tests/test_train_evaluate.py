"""fastnn.train.evaluate: predict and evaluate run in evaluation mode and restore the
mode they found."""
import numpy as np

import fastnn as nn
from conftest import blobs, mlp
from fastnn.train import evaluate, predict


def test_predict_and_evaluate_restore_mode():
    X, y = blobs(100)
    net = mlp(dropout=0.5)
    net.train()
    out = predict(net, X, batch_size=30)
    assert out.shape == (100, 4) and net.training
    net.evaluate()
    loss, acc = evaluate(net, nn.ClassNLLCriterion(), X, y, batch_size=30)
    assert not net.training
    assert np.isfinite(loss) and 0 <= acc <= 1
