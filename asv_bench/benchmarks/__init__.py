"""asv benchmarks for fastnn, one file per kernel family (see ../README.md).

Conventions (pandas' asv_bench): ``params``/``param_names`` on the class, one-line
``time_``/``peakmem_`` bodies, and a ``setup`` that seeds, allocates and calls each
kernel/step once so that Numba's JIT compile (or cache load) never lands in a timing.
Benchmarks whose code is not there yet (``fastnn.conv``, the CUDA kernels, MNIST
files) raise NotImplementedError in ``setup``; asv records them as skipped.
"""
