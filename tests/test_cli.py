"""The ``fastnn`` command: demo (subprocess), train (in process, on
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


def test_demo_is_the_quickstart_and_repeats(capsys):
    """Same seed, same figures; ``fastnn demo`` prints what ``quickstart()`` prints."""
    from fastnn.quickstart import quickstart
    assert main(["demo", "--epochs", "3", "--seed", "4"]) == 0
    first = capsys.readouterr().out
    accuracy = quickstart(epochs=3, seed=4)
    assert capsys.readouterr().out == first
    assert first.strip().splitlines()[-1] == f"accuracy: {accuracy:.4f}"


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


def one_error_line(capsys):
    """The single stderr line of a failed command, without its ``fastnn: error: ``."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastnn: error: "), lines[0]
    return lines[0][len("fastnn: error: "):]


@pytest.mark.parametrize("argv,option", [
    (["train", "mnist", "--batch-size", "0"], "--batch-size"),
    (["train", "mnist", "--epochs", "0"], "--epochs"),
    (["train", "mnist", "--epochs", "-1"], "--epochs"),
    (["train", "mnist", "--epochs", "two"], "--epochs"),
    (["train", "mnist", "--lr", "0"], "--lr"),
    (["train", "mnist", "--lr", "nan"], "--lr"),
    (["train", "mnist", "--seed", "-1"], "--seed"),
    (["train", "mnist", "--threads", "0"], "--threads"),
    (["train", "mnist", "--model", "rnn"], "--model"),
    (["train", "cifar"], "dataset"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["compare-activations", "--batch-size", "0"], "--batch-size"),
    (["nonsense"], "COMMAND"),
])
def test_a_bad_option_is_one_line_and_exit_2(capsys, argv, option):
    assert main(argv) == 2
    assert option in one_error_line(capsys)


def test_out_must_not_be_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["train", "mnist", "--out", str(tmp_path / "f")]) == 2
    assert "is a file" in one_error_line(capsys)


def test_resume_needs_out(capsys):
    assert main(["train", "mnist", "--resume", "--no-progress"]) == 2
    assert "--resume needs --out" in one_error_line(capsys)


@pytest.mark.parametrize("flag", [["--pretrain-classifier"], ["--recipe", "seed"],
                                  ["--optimizer", "adam"]])
def test_autoencoder_options_need_the_autoencoder(capsys, flag):
    assert main(["train", "mnist", "--model", "mlp"] + flag) == 2
    assert f"{flag[0]} goes with --model autoencoder" in one_error_line(capsys)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fastnn {fastnn.__version__}"


def _subparsers(parser):
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_option_has_help_text():
    import argparse
    from fastnn.cli import build_parser
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) >= {"train", "demo", "compare-activations"}
    for name, p in [("fastnn", parser)] + list(commands.items()):
        for action in p._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and len(action.help) > 10, (name, action.option_strings)


def test_threads_help_names_both_pools(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "fastnn's batch split" in text and "BLAS" in text


def test_default_output_folder_is_in_the_help(capsys):
    assert main(["compare-activations", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {os.path.join('fastnn-runs', 'compare-activations')})" in text


def _fake_mnist(folder, names, content=b"not gzip"):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, name + ".gz"), "wb") as f:
            f.write(content)


def test_a_partial_data_folder_names_the_missing_files(tmp_path, monkeypatch, capsys):
    from fastnn.data import FILES, TEST_IMAGES, TEST_LABELS
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path))
    _fake_mnist(tmp_path / "data" / "mnist", FILES[:2])
    assert main(["train", "mnist", "--no-download", "--no-progress"]) == 2
    err = one_error_line(capsys)
    assert f"{tmp_path / 'data' / 'mnist'} lacks {TEST_IMAGES}, {TEST_LABELS}" in err


def test_a_corrupt_gz_is_one_line(tmp_path, monkeypatch, capsys):
    from fastnn.data import FILES
    monkeypatch.setenv("HOME", str(tmp_path))
    _fake_mnist(tmp_path / "data", FILES)
    assert main(["train", "mnist", "--data", str(tmp_path / "data"), "--no-download",
                 "--no-progress"]) == 2
    err = one_error_line(capsys)
    assert err.startswith("MNIST: ") and "corrupt or truncated gzip" in err


def test_fastnn_data_and_data_search_the_same_places(tmp_path, monkeypatch):
    from fastnn.data import search_dirs
    folder = tmp_path / "data"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    with_option = search_dirs(folder)
    monkeypatch.setenv("FASTNN_DATA", str(folder))
    assert search_dirs(None) == with_option == [
        str(folder), str(folder / "mnist"), str(tmp_path / ".cache" / "fastnn" / "mnist")]


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
def test_compare_activations_tiny_writes_into_the_default_folder(tmp_path, monkeypatch,
                                                                capsys):
    monkeypatch.chdir(tmp_path)  # no --out: ./fastnn-runs/compare-activations
    assert main(["compare-activations", "--epochs", "1", "--limit-train", "500",
                 "--limit-test", "200", "--no-progress"]) == 0
    text = capsys.readouterr().out
    table = text[text.rindex("variant"):]
    for act in ("ReLU", "ELU", "LeakyReLU", "SoftPlus"):
        # one seed: test accuracy (%), final train loss, s/epoch without a spread
        assert re.search(rf"^{act}\s+\d+\.\d\d\s+\d+\.\d{{4}}\s+\d+\.\d$", table, re.M), act
    out = tmp_path / "fastnn-runs" / "compare-activations"
    assert (out / "compare_activations.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fastnn-runs"]


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
