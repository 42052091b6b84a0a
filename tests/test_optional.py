"""fastnn._optional.require: a missing optional dependency names its pip extra."""
import sys

import pytest

from fastnn._optional import DISTRIBUTION, require


def test_present_module_is_returned():
    assert require("json", "plot", "x").dumps(1) == "1"


def test_missing_module_names_the_extra_and_the_feature(monkeypatch):
    # a None entry makes the import fail, also when an earlier test imported matplotlib
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"History\.plot needs matplotlib.*"
                                          r"pip install 'fastnn-torch7\[plot\]'"):
        require("matplotlib.figure", "plot", "History.plot")
    assert DISTRIBUTION == "fastnn-torch7"
