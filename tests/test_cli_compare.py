"""``fastnn compare WHAT`` (fastnn/cli/compare.py): each comparison with a tiny budget on
real MNIST (hidden --limit-train/--limit-test/--max-steps) prints a row per variant and
writes its plot, table and JSON. No test asserts which variant wins."""
import json
import os
import re

import numpy as np
import pytest

from fastnn import models
from fastnn.cli import main
from fastnn.cli import compare

DATA = os.environ.get("FASTNN_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not os.path.isdir(os.path.join(DATA, "mnist")),
                                 reason="real MNIST not available (set FASTNN_DATA)")
TINY = ["--epochs", "1", "--seeds", "2", "--limit-train", "512", "--limit-test", "200",
        "--max-steps", "3", "--no-progress", "--threads", "1"]
ROWS = {
    "activations": ["ReLU", "ELU", "LeakyReLU", "SoftPlus"],
    "normalization": ["none", "BatchMeanSubtraction", r"BatchNormalization \+ ChannelwiseScaling"],
    "dropout": ["p = 0", "p = 0.2", "p = 0.5"],
    "optimizers": [r"sgd_momentum lr [0-9.e-]+", r"adam lr [0-9.e-]+"],
    "pretraining": ["from scratch", "autoencoder pre-training \\+ fine-tuning"],
}
PM = r"\d+\.\d+ ± \d+\.\d+"


def table_of(text):
    return text[text.rindex("variant"):]


@needs_mnist
@pytest.mark.parametrize("what", sorted(ROWS))
def test_compare_tiny(what, tmp_path, capsys):
    extra = ["--pretrain-epochs", "1"] if what == "pretraining" else []
    assert main(["compare", what, *TINY, *extra, "--out", str(tmp_path)]) == 0
    table = table_of(capsys.readouterr().out)
    for name in ROWS[what]:
        # every row: test accuracy, final train loss and s/epoch, each mean ± std of 2 seeds
        assert re.search(rf"^{name}\s+{PM}\s+{PM}\s+{PM}$", table, re.M), (name, table)
    table = table[:table.index("total time")]
    assert len([l for l in table.splitlines()[1:] if l.strip()]) == len(ROWS[what])
    assert (tmp_path / f"compare_{what}.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / f"compare_{what}.md").read_text()
    assert md.count("\n") == 2 + len(ROWS[what])
    res = json.loads((tmp_path / f"compare_{what}.json").read_text())
    assert [len(v["runs"]) for v in res["variants"]] == [2] * len(ROWS[what])
    assert {r["seed"] for v in res["variants"] for r in v["runs"]} == {0, 1}
    if what == "optimizers":
        assert len(res["lr_grid"]) == sum(len(v) for v in compare.LR_GRID.values())
    if what == "pretraining":
        scratch, pre = res["variants"]
        assert "test_reconstruction" in pre["runs"][0]
        assert "test_reconstruction" not in scratch["runs"][0]


@needs_mnist
def test_seeds_are_repeatable_and_distinct(tmp_path, capsys):
    """The same seed gives the same run (the variant's initialisation is seeded), another
    seed another one."""
    args = ["compare", "dropout", "--epochs", "1", "--limit-train", "512", "--limit-test", "100",
            "--max-steps", "2", "--no-progress", "--threads", "1"]
    losses = []
    for seed, folder in ((0, "a"), (0, "b"), (1, "c")):
        assert main(args + ["--seeds", "1", "--seed", str(seed),
                            "--out", str(tmp_path / folder)]) == 0
        res = json.loads((tmp_path / folder / "compare_dropout.json").read_text())
        losses.append([r["step_loss"] for v in res["variants"] for r in v["runs"]])
    capsys.readouterr()
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


@needs_mnist
def test_compare_activations_alias(tmp_path, capsys):
    assert main(["compare-activations", "--epochs", "1", "--limit-train", "500",
                 "--limit-test", "200", "--max-steps", "2", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    table = table_of(capsys.readouterr().out)
    for act in ROWS["activations"]:
        # one seed: plain figures, no ± column
        assert re.search(rf"^{act}\s+\d+\.\d\d\s+\d+\.\d{{4}}\s+\d+\.\d$", table, re.M), act
    assert (tmp_path / "compare_activations.png").read_bytes()[:4] == b"\x89PNG"


def test_table_is_mean_and_sample_std():
    runs = [dict(test_accuracy=a, final_train_loss=l, seconds_per_epoch=s)
            for a, l, s in ((0.9, 0.5, 1.0), (0.8, 0.3, 3.0))]
    [(name, acc, loss, sec)] = compare.summarize([(compare.Variant("x", None), runs)])
    assert (name, acc, loss, sec) == ("x", "85.00 ± 7.07", "0.4000 ± 0.1414", "2.0 ± 1.4")


def test_activation_mlp_normalization_and_dropout_layers():
    import fastnn as nn
    kinds = lambda net: [type(m).__name__ for m in net.modules]
    assert kinds(models.activation_mlp("ReLU", norm="BatchNormalization", dropout=0.2)) == [
        "Linear", "BatchNormalization", "ChannelwiseScaling", "ReLU", "Dropout",
        "Linear", "BatchNormalization", "ChannelwiseScaling", "ReLU", "Dropout",
        "Linear", "LogSoftMax"]
    assert kinds(models.activation_mlp("ELU", norm="BatchMeanSubtraction"))[:3] == [
        "Linear", "BatchMeanSubtraction", "ELU"]
    assert isinstance(models.activation_mlp("ReLU", dropout=0.5).modules[2], nn.Dropout)
    with pytest.raises(ValueError, match="norm"):
        models.activation_mlp("ReLU", norm="LayerNorm")


def test_plot_gives_every_variant_its_own_colour_and_style(tmp_path):
    """No variant's curve can hide another's: distinct colour, line style and marker."""
    steps = list(np.linspace(0.01, 1, 100))
    rng = np.random.default_rng(0)
    rows = [(compare.Variant(f"v{i}", None),
             [dict(steps=steps, step_loss=list(1 + rng.random(100)), test_accuracy=0.9)] * 2)
            for i in range(5)]
    fig = compare.plot(tmp_path / "p.png", rows, "t")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    lines = fig.axes[0].get_lines()
    assert len(lines) == 5
    assert len({l.get_color() for l in lines}) == 5
    assert len({l.get_marker() for l in lines}) == 5
    # matplotlib names four dash patterns (a custom one reads as "--"): check those four
    assert len({l.get_linestyle() for l in lines[:4]}) == 4
    assert len(set(map(str, compare.LINESTYLES))) == len(compare.LINESTYLES)
