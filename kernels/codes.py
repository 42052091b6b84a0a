"""Integer codes shared by the modules, the CPU and CUDA kernels and the benchmarks.

One source for each: kernels branch on these values, modules pass them. No numba import,
so the package can read them without loading a compiler.
"""

# Activation codes: which elementwise function a fused kernel applies after its GEMM or
# convolution; ``alpha`` is the LeakyReLU slope or the ELU alpha.
NONE, RELU, LEAKY_RELU, ELU, SOFTPLUS, SIGMOID, TANH = range(7)

# What a criterion's input looks like (``softmax_nll.classify_input``): log-probabilities
# (no positive entry), probabilities (rows in [0, 1]) or raw scores (anything else).
LOG_PROBABILITIES, PROBABILITIES, RAW_SCORES = 0, 1, 2
