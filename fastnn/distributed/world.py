"""The MPI world a process belongs to: ``init``, ``rank``, ``size``, ``comm``.

A process that was not started by an MPI launcher (``mpiexec``, ``srun`` with PMI) is a
world of size 1 and never imports mpi4py: a plain ``python train.py`` costs nothing
extra. Under a launcher, ``init`` imports mpi4py (which initialises MPI) and installs an
excepthook that aborts the whole job when one rank dies of an uncaught exception: the
others would otherwise wait in their next collective forever.
"""
import os
import sys

from .._optional import DISTRIBUTION

#: Variables that MPI launchers set in every process they start (MPICH/Hydra, Intel MPI
#: and Slurm's PMI: PMI_*; Open MPI: OMPI_*; PMIx launchers: PMIX_RANK; MVAPICH: MV2_*).
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                      "MV2_COMM_WORLD_SIZE")

INSTALL_HINT = (f"pip install '{DISTRIBUTION}[mpi]' (mpi4py and the mpich wheel, which "
                f"brings mpiexec)")

_world = {"comm": None, "rank": 0, "size": 1, "initialized": False, "hook": None}


class DistributedError(RuntimeError):
    """MPI was asked for but cannot run (mpi4py missing or broken)."""


def launched_by_mpi(environ=os.environ) -> bool:
    """True when an MPI launcher started this process (one of ``LAUNCHER_VARIABLES``)."""
    return any(v in environ for v in LAUNCHER_VARIABLES)


def _launcher_size(environ):
    for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        try:
            return int(environ[v])
        except (KeyError, ValueError):
            continue
    return None


def _import_mpi():
    """mpi4py's MPI module; None when mpi4py is not installed; DistributedError when it
    is installed but cannot load (no MPI library, an ABI mismatch)."""
    try:
        from mpi4py import MPI
    except ModuleNotFoundError as exc:
        if exc.name == "mpi4py":
            return None
        raise DistributedError(f"fastnn.distributed: mpi4py is installed but cannot load "
                               f"({exc}); reinstall it with {INSTALL_HINT}") from exc
    except Exception as exc:  # ImportError from the MPI library, RuntimeError from MPI_Init
        raise DistributedError(f"fastnn.distributed: mpi4py is installed but MPI cannot start "
                               f"({type(exc).__name__}: {exc}); reinstall it with "
                               f"{INSTALL_HINT}") from exc
    return MPI


def init(comm=None) -> None:
    """Join the MPI world (idempotent).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The communicator to train over (default ``MPI.COMM_WORLD``). Passing one uses
        MPI even without a launcher.

    Raises
    ------
    DistributedError
        Under an MPI launcher that started more than one process, when mpi4py is
        missing; whenever mpi4py is installed but cannot load MPI. The message names
        the ``[mpi]`` extra.

    Without a launcher (and without ``comm``) the process is a world of size 1 and
    mpi4py is not imported.

    Example
    -------
    >>> from fastnn import distributed as dist
    >>> dist.init()
    >>> dist.rank(), dist.size()   # (0, 1) without mpiexec
    (0, 1)
    """
    if _world["initialized"] and comm is None:
        return
    if comm is None and not launched_by_mpi():
        _world.update(comm=None, rank=0, size=1, initialized=True)
        return
    MPI = _import_mpi()
    if MPI is None:
        n = _launcher_size(os.environ)
        if n is not None and n > 1:
            raise DistributedError(f"fastnn.distributed: started by an MPI launcher as one of "
                                   f"{n} processes, but mpi4py is not installed; install it "
                                   f"with {INSTALL_HINT}")
        _world.update(comm=None, rank=0, size=1, initialized=True)
        return
    comm = MPI.COMM_WORLD if comm is None else comm
    _world.update(comm=comm, rank=comm.Get_rank(), size=comm.Get_size(), initialized=True)
    if comm.Get_size() > 1:
        _install_abort_hook(MPI)
        _share_cores(comm, MPI)


def _share_cores(comm, MPI):
    """Ranks on one node split its cores, unless the count was chosen
    (``FASTNN_NUM_THREADS``, ``set_num_threads``, ``--threads``): each rank's default of
    all cores would oversubscribe them. The
    count is fixed (``fit`` does not tune it): ranks that tuned apart would wait for
    the slowest at every allreduce."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local = node.Get_size()
    node.Free()
    from .._runtime.threads import chosen_by_user, set_num_threads
    if local > 1 and not chosen_by_user():
        from .._runtime.parallel import usable_cpus
        set_num_threads(max(1, usable_cpus() // local))


def _install_abort_hook(MPI):
    """An uncaught exception prints its traceback, then aborts every rank: a rank that
    died would leave the others blocked in their next collective."""
    if _world["hook"] is not None and sys.excepthook is _world["hook"]:
        return
    previous = sys.excepthook

    def abort_on_uncaught(exc_type, exc, tb):
        try:
            previous(exc_type, exc, tb)
            sys.stderr.write(f"fastnn.distributed: rank {_world['rank']} raised "
                             f"{exc_type.__name__}; aborting all ranks\n")
            sys.stderr.flush()
        finally:
            if not issubclass(exc_type, KeyboardInterrupt):
                MPI.COMM_WORLD.Abort(1)

    _world["hook"] = abort_on_uncaught
    sys.excepthook = abort_on_uncaught


def _ensure():
    if not _world["initialized"]:
        init()


def rank() -> int:
    """This process's rank (0 in a world of size 1).

    Returns
    -------
    int
    """
    _ensure()
    return _world["rank"]


def size() -> int:
    """The number of processes training together (1 without MPI).

    Returns
    -------
    int
    """
    _ensure()
    return _world["size"]


def comm():
    """The communicator (``None`` in a world of size 1 without MPI).

    Returns
    -------
    mpi4py.MPI.Comm or None
    """
    _ensure()
    return _world["comm"]


def is_lead() -> bool:
    """True on rank 0, the one rank that writes logs, progress bars and checkpoints.

    Returns
    -------
    bool
    """
    return rank() == 0


def silence_other_ranks() -> None:
    """Send this process's standard output to ``os.devnull`` unless it is rank 0, so that
    a script's prints appear once (the command line calls this for ``--distributed``)."""
    if not is_lead():
        sys.stdout.flush()
        sys.stdout = open(os.devnull, "w")


def local_rows(n: int, rank_: int = None, size_: int = None) -> slice:
    """This rank's rows of a global batch of ``n``: contiguous, sizes differing by at
    most one (rank r gets ``[r n / size, (r + 1) n / size)``).

    Parameters
    ----------
    n : int
        Rows in the global batch.
    rank_, size_ : int, optional
        Default: this process's rank and the world's size.

    Returns
    -------
    slice
    """
    r = rank() if rank_ is None else int(rank_)
    s = size() if size_ is None else int(size_)
    return slice(r * n // s, (r + 1) * n // s)
