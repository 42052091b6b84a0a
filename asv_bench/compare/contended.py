"""Runs next to one competing busy process: a plain Python busy loop that holds one
core, as another user's job would. Both libraries' two-thread steps wait on joins (BLAS,
OpenMP, fastnn's batch split) whose other half may sit behind the busy process, so the
question is how far each library falls, at its default threads and at one thread."""
import contextlib
import subprocess
import sys
import time

BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


@contextlib.contextmanager
def busy_process(seconds=3600.0):
    """A competing process that spins on one core for as long as the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=seconds)])
    try:
        time.sleep(0.5)  # let it get scheduled and take its core
        yield proc
    finally:
        proc.kill()
        proc.wait()


class WithThreads:
    """A step callable that sets its library's thread count before each block
    (``timing.alternate`` calls ``prepare``), so one process can alternate settings."""

    def __init__(self, step, set_threads, threads):
        self.step, self.set_threads, self.threads = step, set_threads, threads

    def prepare(self):
        self.set_threads(self.threads)

    def __call__(self):
        self.step()
