"""asv_bench/benchmarks imports cleanly and every parameterised benchmark names its
parameters (asv itself only finds out when it runs the suite)."""
import importlib
import inspect
import os
import pkgutil
import sys

import pytest

ASV_BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "asv_bench")


def benchmark_modules():
    sys.path.insert(0, ASV_BENCH)
    try:
        package = importlib.import_module("benchmarks")
        return [importlib.import_module(f"benchmarks.{m.name}")
                for m in pkgutil.iter_modules(package.__path__)]
    finally:
        sys.path.remove(ASV_BENCH)


@pytest.mark.parametrize("module", benchmark_modules(), ids=lambda m: m.__name__)
def test_benchmark_classes_are_well_formed(module):
    prefixes = ("time_", "peakmem_", "timeraw_", "track_", "mem_")
    for name, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        methods = [m for m in dir(cls) if m.startswith(prefixes)]
        if not methods:
            continue
        params = getattr(cls, "params", None)
        if params is None:
            continue
        names = getattr(cls, "param_names", [])
        # asv: a tuple, or a list of lists, holds one list per parameter
        several = isinstance(params, tuple) or (
            len(names) > 1 and all(isinstance(p, (list, tuple)) for p in params))
        grid = tuple(params) if several else (params,)
        assert len(names) == len(grid), (name, names, grid)
        for method in methods:
            arity = len(inspect.signature(getattr(cls, method)).parameters) - 1
            assert arity == len(grid), (name, method, arity, len(grid))


@pytest.mark.parametrize("module", benchmark_modules(), ids=lambda m: m.__name__)
def test_module_level_setup_names_are_functions(module):
    # asv takes any module attribute called setup/teardown, in any case, as a setup
    # function: a dict named SETUP made it fail every benchmark of the file
    for name, value in vars(module).items():
        if name.lower() in ("setup", "teardown", "setup_cache"):
            assert callable(value), f"{module.__name__}.{name} is not a function"
