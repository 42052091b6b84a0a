"""Every public name (``fastnn.__all__`` and the ``__all__`` of fastnn.models, fastnn.data and
fastnn.train) has its own numpydoc docstring: Parameters naming every argument, Returns for
functions, Shape and Examples for layers; public signatures carry type hints; the package
ships ``py.typed``; and the docstrings' examples run (doctest)."""
import doctest
import importlib
import inspect
import os
import pydoc
import re

import pytest

import fastnn
import fastnn.data
import fastnn.models
import fastnn.train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _public():
    out = {}
    for module in (fastnn, fastnn.models, fastnn.data, fastnn.train):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                out[f"{module.__name__}.{name}"] = obj
    return out


PUBLIC = _public()
LAYERS = sorted(name for name, obj in PUBLIC.items()
                if inspect.isclass(obj) and issubclass(obj, fastnn.Module)
                and obj not in (fastnn.Module, fastnn.Container))
#: The protocol methods every module and criterion inherits: help() shows them. Module's
#: mixins (fastnn/_module_arrays.py, _module_checks.py) are checked as part of it.
METHODS = {cls: [n for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")]
           for cls in (*fastnn.Module.__mro__[:-1], fastnn.Container, fastnn.Sequential,
                       fastnn.Criterion)}


def _arguments(obj):
    """The parameters a caller passes: a function's, or a class's ``__init__``'s."""
    target = obj
    if inspect.isclass(obj):
        owner = next(c for c in obj.__mro__ if "__init__" in vars(c))
        if not inspect.isfunction(vars(owner)["__init__"]):
            return []  # object's or a built-in exception's: nothing of fastnn's to document
        target = obj.__init__
    params = list(inspect.signature(target).parameters.values())
    return [p for p in params if p.name not in ("self", "cls")]


def _section(doc, title):
    """The body of a numpydoc section, or None."""
    m = re.search(rf"^ *{title}\n *-{{{len(title)}}}\n(.*?)(?=\n *\w[\w ]*\n *-{{3,}}\n|\Z)",
                  doc, re.M | re.S)
    return m.group(1) if m else None


def _documented_names(section):
    names = set()
    for line in re.findall(r"^ *([*\w][*\w, ]*?) :", section, re.M):
        names.update(n.strip().lstrip("*") for n in line.split(","))
    return names


def _check_docstring(name, obj, doc, is_function):
    assert doc and doc.strip(), f"{name} has no docstring of its own"
    args = _arguments(obj)
    if args:
        params = _section(doc, "Parameters")
        assert params is not None, f"{name}: no Parameters section"
        missing = {a.name for a in args} - _documented_names(params)
        assert not missing, f"{name}: Parameters does not name {sorted(missing)}"
    if is_function:
        returns = inspect.signature(obj).return_annotation
        if returns is not None and returns != "None":
            assert _section(doc, "Returns") or _section(doc, "Yields"), \
                f"{name}: no Returns section"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_a_numpydoc_docstring(name):
    obj = PUBLIC[name]
    _check_docstring(name, obj, obj.__doc__, inspect.isfunction(obj))


@pytest.mark.parametrize("cls", list(METHODS), ids=lambda c: c.__name__)
def test_protocol_methods_have_numpydoc_docstrings(cls):
    for method in METHODS[cls]:
        fn = vars(cls)[method]
        if fn.__doc__ is None and any(method in vars(base) for base in cls.__mro__[1:]):
            continue  # an override: help() shows the base method's docstring
        _check_docstring(f"{cls.__name__}.{method}", fn, fn.__doc__, is_function=False)


@pytest.mark.parametrize("name", LAYERS)
def test_layers_document_their_shapes_with_an_example(name):
    doc = PUBLIC[name].__doc__
    assert _section(doc, "Shape"), f"{name}: no Shape section"
    examples = _section(doc, "Examples")
    assert examples and ">>> " in examples, f"{name}: no Examples section"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_signatures_have_type_hints(name):
    obj = PUBLIC[name]
    unannotated = [a.name for a in _arguments(obj) if a.annotation is inspect.Parameter.empty]
    assert not unannotated, f"{name}: no type hint on {unannotated}"
    if inspect.isfunction(obj):
        assert inspect.signature(obj).return_annotation is not inspect.Signature.empty, \
            f"{name}: no return type hint"


def test_help_on_a_layer_is_useful():
    text = pydoc.render_doc(fastnn.Linear, renderer=pydoc.plaintext)
    for word in ("Parameters", "n_in", "n_out", "Shape", "Examples", "Returns", "gradOutput"):
        assert word in text, word


def test_the_package_ships_py_typed():
    assert os.path.isfile(os.path.join(ROOT, "fastnn", "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert re.search(r'^\[tool\.setuptools\.package-data\]\nfastnn = \[[^\]]*"py\.typed"',
                         f.read(), re.M)


DOCTEST_MODULES = ["fastnn.container", "fastnn.sequential", "fastnn.nested", "fastnn.layers",
                   "fastnn.normalization", "fastnn.activations", "fastnn.conv",
                   "fastnn.criterions", "fastnn.optim", "fastnn.gradcheck", "fastnn.models",
                   "fastnn.data.batches", "fastnn.data.augment", "fastnn.data.mnist",
                   "fastnn.train.history", "fastnn.train.callbacks"]


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or module == "fastnn.data.mnist"
