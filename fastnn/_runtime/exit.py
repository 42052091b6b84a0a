"""A faster interpreter exit once Numba is loaded.

Numba's typing and lowering registries leave about 10^5 long-lived objects, and the
garbage collections CPython runs while shutting down walk all of them, a large share of
a short process's life (asv ``startup.Startup.timeraw_import_build_first_step`` measures
import + first training step + exit). Freezing the collector at exit (``gc.freeze``)
skips that walk; reference counting still frees what it frees anyway. Objects caught in
reference cycles are then left to the OS instead of collected, so their finalizers do
not run; Python never guaranteed that at shutdown, and fastnn's own files are closed
explicitly (and written atomically). ``FASTNN_FAST_EXIT=0`` turns this off.
"""
import atexit
import gc
import os
import sys


def freeze_if_numba_loaded():
    if "numba" in sys.modules:
        gc.freeze()


def install(environ=os.environ, register=atexit.register):
    if environ.get("FASTNN_FAST_EXIT", "1") != "0":
        register(freeze_if_numba_loaded)
