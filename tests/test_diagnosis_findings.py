"""fastnn/diagnosis/findings.py: the codes table, Finding validation, the ranked report;
and that every code has a test that provokes it."""
import inspect
import os
import re

import pytest

import test_diagnosis_battery
import test_diagnosis_watcher
from fastnn.diagnosis import CODES, Diagnosis, Finding


def test_every_code_is_provoked_by_a_test():
    provoked = {}
    for module in (test_diagnosis_battery, test_diagnosis_watcher):
        for code, test in module.PROVOKED.items():
            assert code in CODES, code
            assert inspect.isfunction(getattr(module, test)), (module.__name__, test)
            provoked.setdefault(code, []).append(test)
    assert set(provoked) == set(CODES)


def test_unknown_code_and_severity_rejected():
    with pytest.raises(ValueError, match="unknown code"):
        Finding("loss_is_sad", "error", "x")
    with pytest.raises(ValueError, match="severity"):
        Finding("input_scale", "fatal", "x")


def test_report_is_ranked_and_gives_fixes():
    d = Diagnosis()
    d.add("dead_units", "warning", "most units dead", "ReLU")
    d.add("loss_at_chance", "note", "stuck")
    d.add("nonfinite_loss", "error", "loss is nan", "Linear 3 -> 2")
    assert [f.code for f in d.ranked()] == ["nonfinite_loss", "dead_units", "loss_at_chance"]
    assert d.codes == {"dead_units", "loss_at_chance", "nonfinite_loss"}
    text = str(d)
    assert text.index("nonfinite_loss") < text.index("dead_units") < text.index("loss_at_chance")
    assert "[Linear 3 -> 2]" in text and text.count("fix: ") == 3
    assert CODES["dead_units"][1] in text


def test_docs_table_lists_every_code():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, os.pardir, "docs", "diagnose.md"), encoding="utf-8") as f:
        documented = set(re.findall(r"^\| `(\w+)` \|", f.read(), re.M))
    assert documented == set(CODES)
