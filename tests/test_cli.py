"""The ``fastnn`` command: demo (subprocess), train / compare-activations (in process, on
small MNIST subsets through the hidden --limit-* options), missing-data error."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.cli import main

DATA = os.environ.get("FASTNN_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not os.path.isdir(os.path.join(DATA, "mnist")),
                                 reason="real MNIST not available (set FASTNN_DATA)")
SMALL = ["--limit-train", "1000", "--limit-test", "500", "--no-progress"]


def last_line(text):
    return text.strip().splitlines()[-1]


def test_demo_subprocess():
    r = subprocess.run([sys.executable, "-m", "fastnn", "demo", "--epochs", "5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert sum(1 for l in lines if l.startswith("epoch ")) == 5
    m = re.fullmatch(r"accuracy: (\d\.\d{4})", lines[-1])
    assert m and float(m.group(1)) > 0.95


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_missing_mnist_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/fastnn/mnist either
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert main(["train", "mnist", "--model", "mlp", "--no-progress", "--no-download"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("fastnn: error: MNIST not found") and "FASTNN_DATA" in err
    assert "--no-download" in err
    assert f"put the four IDX files in {tmp_path / '.cache' / 'fastnn' / 'mnist'}" in err


def test_failed_download_is_one_clear_line(tmp_path, monkeypatch, capsys):
    """The default downloads; when every mirror fails the error stays one line and says why."""
    from fastnn.data import mnist as datasets
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(datasets, "MIRRORS", ["http://127.0.0.1:9/"])  # closed port: fails fast
    assert main(["train", "mnist", "--model", "mlp", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "downloading failed" in err and "FASTNN_DATA" in err


def test_pretrain_flag_needs_autoencoder(capsys):
    assert main(["train", "mnist", "--model", "mlp", "--pretrain-classifier"]) == 2


@needs_mnist
def test_train_mlp_one_epoch(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "mnist", "--model", "mlp", "--epochs", "1", "--lr", "0.05",
                 "--out", str(out)] + SMALL) == 0
    text = capsys.readouterr().out
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", last_line(text))
    assert float(last_line(text).split()[-1]) > 0.2  # 8 steps: clearly above chance
    epoch_lines = [l for l in text.splitlines() if l.startswith("epoch ")]
    assert len(epoch_lines) == 1
    for word in ("train loss", "train acc", "val acc", "lr", "s"):
        assert word in epoch_lines[0]
    assert (out / "mlp_history.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "mlp_results.json").read_text())
    assert results["model"] == "mlp" and 0 < results["test_accuracy"] <= 1
    assert (out / "mlp.npz").exists()

    # --resume continues from the checkpoint: only epoch 2 runs
    assert main(["train", "mnist", "--model", "mlp", "--epochs", "2", "--lr", "0.05",
                 "--out", str(out), "--resume"] + SMALL) == 0
    text = capsys.readouterr().out
    assert [l.split()[1] for l in text.splitlines() if l.startswith("epoch ")] == ["2/2"]


@needs_mnist
def test_train_autoencoder_seed_recipe(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", "mnist", "--model", "autoencoder", "--recipe", "seed", "--epochs",
                 "1", "--out", str(out)] + SMALL) == 0
    line = last_line(capsys.readouterr().out)
    m = re.fullmatch(r"test reconstruction: (\d+\.\d\d) \(PCA-30: (\d+\.\d\d)\)", line)
    assert m, line
    assert 0 < float(m.group(2)) < 40
    assert (out / "autoencoder_seed_reconstructions.png").stat().st_size > 1000
    assert (out / "autoencoder_seed_history.png").exists()


def test_autoencoder_can_start_at_the_mean_image():
    from fastnn.models import autoencoder as autoencoder_net
    rng = np.random.default_rng(0)
    mean = rng.uniform(0.0, 1.0, 784)
    mean[:50] = 0.0  # black border pixels: the logit is clipped, not -inf
    fastnn.manual_seed(0)
    net = autoencoder_net("seed", mean).evaluate()
    out = net.forward(rng.uniform(0, 1, (8, 784)).astype(np.float32))
    assert np.all(np.isfinite(out))
    assert np.abs(out - mean).mean() < 0.03
    fastnn.manual_seed(0)
    plain = autoencoder_net("seed").evaluate().forward(np.zeros((2, 784), np.float32))
    assert np.abs(plain - mean).mean() > 0.1  # without it the output starts near 0.5


@needs_mnist
def test_pretrain_classifier_stages(capsys):
    assert main(["train", "mnist", "--model", "autoencoder", "--pretrain-classifier",
                 "--epochs", "1", "--head-epochs", "1", "--finetune-epochs", "1"] + SMALL) == 0
    text = capsys.readouterr().out
    for stage in ("stage 1", "stage 2", "stage 3"):
        assert stage in text
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", last_line(text))


@needs_mnist
def test_compare_activations_tiny(tmp_path, capsys):
    assert main(["compare-activations", "--epochs", "1", "--limit-train", "500",
                 "--limit-test", "200", "--no-progress", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("activation"):]
    for act in ("ReLU", "ELU", "LeakyReLU", "SoftPlus", "none"):
        assert re.search(rf"^{act}\s+\d+\.\d{{4}}\s+0\.\d{{4}}\s+\d+\.\d$", table, re.M), act
    assert (tmp_path / "compare_activations.png").read_bytes()[:4] == b"\x89PNG"


@needs_mnist
def test_train_cnn_few_steps(capsys):
    assert main(["train", "mnist", "--model", "cnn", "--epochs", "1", "--max-steps", "3",
                 "--limit-train", "512", "--limit-test", "100", "--no-progress"]) == 0
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", last_line(capsys.readouterr().out))


@needs_mnist
def test_export_onnx_writes_the_trained_net(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    out, path = tmp_path / "out", tmp_path / "onnx" / "mlp.onnx"
    assert main(["train", "mnist", "--model", "mlp", "--epochs", "1", "--max-steps", "2",
                 "--out", str(out), "--export-onnx", str(path)] + SMALL) == 0
    assert f"ONNX model: {path}" in capsys.readouterr().out
    # the file computes what the trained net (as checkpointed) computes in evaluate mode
    from fastnn import models
    from fastnn.train import load_checkpoint
    net = models.mlp()
    load_checkpoint(out / "mlp.npz", net)
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    np.testing.assert_allclose(got, net.evaluate().forward(x), rtol=1e-5, atol=1e-5)


def test_export_onnx_without_onnx_fails_before_training(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["train", "mnist", "--export-onnx", "x.onnx", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "--export-onnx needs onnx" in err and "fastnn-torch7[onnx]" in err


@needs_mnist
def test_plots_are_skipped_with_a_note_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    assert main(["train", "mnist", "--model", "mlp", "--epochs", "1", "--max-steps", "1",
                 "--out", str(out)] + SMALL) == 0
    assert "fastnn-torch7[plot]" in capsys.readouterr().err
    assert (out / "mlp_results.json").exists() and not (out / "mlp_history.png").exists()
    with pytest.raises(ImportError, match=r"History\.plot needs matplotlib.*\[plot\]"):
        fastnn.History().plot(tmp_path / "h.png")
