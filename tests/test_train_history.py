"""fastnn.train.history: the History a run returns, and its plot."""
import fastnn as nn
from conftest import blobs, mlp
from fastnn.train import History, fit


def test_history_plot_writes_png(tmp_path):
    X, y = blobs(200)
    h = fit(mlp(), nn.ClassNLLCriterion(), X, y, epochs=2, batch_size=50, X_val=X[:50],
            y_val=y[:50], progress=False, log=None, seed=0)
    path = tmp_path / "sub" / "history.png"
    h.plot(path, title="blobs")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h2 = History()
    h2.epochs, h2.train_loss, h2.val_loss, h2.steps = [1], [3.0], [None], [2]
    h2.train_accuracy, h2.val_accuracy, h2.step_loss = [None], [None], [4.0, 2.0]
    h2.plot(tmp_path / "ae.png")
    assert (tmp_path / "ae.png").stat().st_size > 1000
