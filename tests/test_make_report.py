"""scripts/make_report.py: the commands it runs are the ones docs/report.md shows, and it
rewrites only the marked table blocks of the report, from the results it finds."""
import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def make_report(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "make_report", os.path.join(ROOT, "scripts", "make_report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(mod, "REPORT", str(tmp_path / "report.md"))
    return mod


def test_commands_are_shown_as_the_report_quotes_them(make_report):
    opts = make_report.main.__globals__["argparse"].Namespace(
        epochs=5, seeds=3, threads=1, ae_best_epochs=None)
    cmds = make_report.commands(opts)
    assert set(cmds) == set(make_report.STEPS)
    argv, env, _ = cmds["compare-dropout"]
    assert argv[0] == sys.executable
    shown = make_report.shown(argv, env)
    assert shown.startswith("fastnn compare dropout --epochs 5 --seeds 3 --threads 1")
    assert "--out" in shown
    argv, env, _ = cmds["ae-variants"]
    assert make_report.shown(argv, env).startswith(
        "FASTNN_NUM_THREADS=1 python scripts/autoencoder_seed_variants.py --out")
    argv, _, _ = cmds["ae-best"]
    assert "--epochs" not in argv
    opts.ae_best_epochs = 10
    argv = make_report.commands(opts)["ae-best"][0]
    assert argv[argv.index("--epochs") + 1] == "10"


def test_fill_report_rewrites_only_the_marked_blocks(make_report, tmp_path):
    compare = tmp_path / "runs" / "compare"
    compare.mkdir(parents=True)
    (compare / "compare_dropout.md").write_text("| variant |\n| --- |\n| p = 0 |\n")
    (tmp_path / "runs" / "runs.json").write_text(json.dumps({"compare-dropout": dict(
        command="fastnn compare dropout", exit=0, minutes=1.5, commit="abc1234",
        finished="x", load_average=[3.0, 2.0, 1.0])}))
    report = tmp_path / "report.md"
    report.write_text("intro\n<!-- make_report:compare_dropout -->\nold table\n"
                      "<!-- /make_report -->\nmiddle\n<!-- make_report:compare_optimizers -->\n"
                      "kept\n<!-- /make_report -->\nend\n")
    make_report.fill_report(make_report.tables())
    text = report.read_text()
    assert "old table" not in text and "| p = 0 |" in text
    assert "`fastnn compare dropout` at commit abc1234: 1.5 min" in text
    # no results for the optimizers yet: that block stays as it was
    assert "kept" in text and text.startswith("intro\n") and text.endswith("end\n")
    make_report.fill_report(make_report.tables())
    assert report.read_text() == text
