"""Dropout on the GPU: a Bernoulli keep-mask scaled by 1/(1-p), drawn from
``numba.cuda.random``'s xoroshiro128p generators.

The generator states live in a module-level cache, one state per thread of the
launch grid, and advance in place with every draw, so consecutive calls give fresh
masks. Thread t always uses state t for the elements of its grid-stride loop, so a
seed fixes the masks (for a given launch configuration). The states are initialised
on the host with splitmix64 (the seeding Vigna recommends for xoroshiro), vectorised in
NumPy: ``create_xoroshiro128p_states`` instead jumps each state 2^64 steps ahead of
the previous one in a sequential loop, which takes minutes in the CUDA simulator.

The keep test is integer-only, like the CPU twin's: keep when the draw's high 32 bits
are >= p 2^32 (P(keep) = 1 - p to within 2^-32), so no float64 (numba's
``xoroshiro128p_uniform_float32`` goes through float64) and the mask value is the
array's dtype.

Seeding: ``seed(value)`` (the CPU twin's name) reseeds; ``fastnn.manual_seed`` calls it
through the backend, so kernels never read fastnn's state. Unseeded, the first forward
seeds from the operating system's entropy, as the CPU twin's Numba generator does.
"""
import warnings

import numpy as np
from numba import cuda
from numba.core import config as numba_config
from numba.cuda.random import xoroshiro128p_dtype, xoroshiro128p_next

from . import config
from ._typed import like

if numba_config.ENABLE_CUDASIM:
    # The simulator runs xoroshiro128+ on NumPy uint64 scalars, whose wrap-around (the
    # intended modular arithmetic) NumPy reports as overflow.
    warnings.filterwarnings("ignore", message="overflow encountered", category=RuntimeWarning,
                            module=r"(fastnn\.kernels\.cuda\.dropout|numba\.cuda\.random)$")

_RNG = {"states": None, "seed": None}
_TWO_32 = 4294967296.0


def seed(value):
    """Seed the GPU dropout generators (states are rebuilt at the next forward)."""
    _RNG["seed"] = int(value) % (2 ** 63)
    _RNG["states"] = None


def _states(n_threads):
    if _RNG["seed"] is None:
        seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))
    states = _RNG["states"]
    if states is None or states.shape[0] < n_threads:
        # Grown (or first) states restart the stream from the seed: still deterministic.
        states = cuda.to_device(_initial_states(n_threads, _RNG["seed"]))
        _RNG["states"] = states
    return states


def _splitmix64(z):
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _initial_states(n, seed):
    """n xoroshiro128p states: words 2i and 2i+1 of the splitmix64 stream from ``seed``."""
    k = np.arange(1, 2 * n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        words = _splitmix64(np.uint64(seed) + k * np.uint64(0x9E3779B97F4A7C15))
    states = np.empty(n, dtype=xoroshiro128p_dtype)
    states["s0"] = words[0::2]
    states["s1"] = words[1::2]
    zero = (states["s0"] == 0) & (states["s1"] == 0)
    states["s1"][zero] = 1  # the all-zero state would stay zero forever
    return states


@cuda.jit(cache=True)
def _forward(x, y, mask, threshold, scale, states):
    t = cuda.grid(1)
    i = t
    stride = cuda.gridsize(1)
    zero = like(x, 0.0)
    while i < x.size:
        keep = scale if (xoroshiro128p_next(states, t) >> 32) >= threshold else zero
        mask[i] = keep
        y[i] = x[i] * keep
        i += stride


@cuda.jit(cache=True)
def _backward(g, gi, mask):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < g.size:
        gi[i] = g[i] * mask[i]
        i += stride


def dropout_forward(input, output, mask, p):
    if input.size == 0:
        return
    blocks, tpb = config.grid_1d(input.size)
    states = _states(blocks * tpb)
    _forward[blocks, tpb](config.flat(input), config.flat(output), config.flat(mask),
                          np.uint64(p * _TWO_32), config.typed(input, 1.0 / (1.0 - p)),
                          states)


def dropout_backward(gradOutput, gradInput, mask):
    if gradOutput.size == 0:
        return
    blocks, tpb = config.grid_1d(gradOutput.size)
    _backward[blocks, tpb](config.flat(gradOutput), config.flat(gradInput), config.flat(mask))
