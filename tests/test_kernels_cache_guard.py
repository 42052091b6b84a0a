"""kernels/_cache_guard: one digest per kernel folder drops the folder's Numba cache when
any of its sources changes (Numba itself only checks each kernel's own file)."""
import os

import fastnn.kernels.cpu as cpu_kernels
from fastnn.kernels import _cache_guard as guard


def _cached_files(cache, module):
    names = [f"{module}.f-3.py311.nbi", f"{module}.f-3.py311.1.nbc"]
    for name in names:
        with open(os.path.join(cache, name), "w") as f:
            f.write("x")
    return names


def test_an_edit_to_any_file_drops_the_whole_folders_cache(tmp_path):
    folder = tmp_path / "kern"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "blas.py").write_text("def gemm(): pass\n")
    (folder / "affine.py").write_text("from .blas import gemm\n")
    cache = guard.cache_folder(str(folder / "__init__.py"))
    os.makedirs(cache, exist_ok=True)
    keep = os.path.join(cache, "affine.cpython-311.pyc")   # not a Numba file
    foreign = os.path.join(cache, "elsewhere.f-1.py311.nbi")  # not this folder's module
    for path in (keep, foreign):
        open(path, "w").close()

    affine = _cached_files(cache, "affine")
    guard.drop_stale_cache(str(folder))   # first sight: no stamp yet, so drop
    assert not any(os.path.exists(os.path.join(cache, n)) for n in affine)
    assert os.path.exists(keep) and os.path.exists(foreign)

    affine = _cached_files(cache, "affine")
    guard.drop_stale_cache(str(folder))   # nothing changed: the cache stays
    assert all(os.path.exists(os.path.join(cache, n)) for n in affine)

    (folder / "blas.py").write_text("def gemm(): return 1\n")  # only the callee changes
    guard.drop_stale_cache(str(folder))
    assert not any(os.path.exists(os.path.join(cache, n)) for n in affine)
    with open(os.path.join(cache, guard.STAMP)) as f:
        assert f.read().strip() == guard.sources_digest(str(folder))


def test_the_guard_never_raises_and_a_failed_guard_leaves_the_cache(tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    assert guard.drop_stale_cache(str(missing)) is None
    assert not missing.exists()

    folder = tmp_path / "kern"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "blas.py").write_text("def gemm(): pass\n")
    cache = guard.cache_folder(str(folder / "__init__.py"))
    os.makedirs(cache, exist_ok=True)
    blas = _cached_files(cache, "blas")  # no stamp yet: a working guard would drop them

    def broken(_):
        raise AttributeError("numba internals moved")
    monkeypatch.setattr(guard, "cache_folder", broken)
    assert guard.drop_stale_cache(str(folder)) is None
    # The guard gave up: the files are left to Numba's own per-file checks, no stamp.
    assert all(os.path.exists(os.path.join(cache, n)) for n in blas)
    assert not os.path.exists(os.path.join(cache, guard.STAMP))


def test_the_cpu_kernels_cache_carries_the_current_digest():
    folder = os.path.dirname(cpu_kernels.__file__)
    cache = guard.cache_folder(os.path.join(folder, "__init__.py"))
    with open(os.path.join(cache, guard.STAMP)) as f:
        assert f.read().strip() == guard.sources_digest(folder)
