"""Sequential: children applied in order, with a layer and the activation after it
fused into one kernel per phase (``can_fuse_with``/``forward_fused``/``backward_fused``),
and the batch-split hint for a net that has layers which always split."""
from typing import Callable

from .module import Container, Module, _concurrent_use

__all__ = ["Sequential"]


class Sequential(Container):
    """Children applied in order: each one's output is the next one's input.

    ``backward`` feeds each child the input it saw in ``forward``. A Linear or Conv2d
    followed by an activation runs as one fused kernel per phase. Supports ``len``,
    indexing (an int gives a child, a slice a new Sequential of the same children),
    iteration and ``print(net)``.

    Parameters
    ----------
    *modules : Module
        The children, in order.

    Shape
    -----
    - input: what the first child takes
    - output: what the last child gives

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> fastnn.manual_seed(0)
    >>> net = fastnn.Sequential(fastnn.Linear(4, 8), fastnn.ReLU(), fastnn.Linear(8, 3),
    ...                         fastnn.LogSoftMax())
    >>> x = np.ones((5, 4), np.float32)
    >>> out = net.forward(x)
    >>> out.shape
    (5, 3)
    >>> net.backward(x, np.ones_like(out)).shape
    (5, 4)
    >>> len(net), net[0]
    (4, Linear 4 -> 8)
    """

    def insert(self, module, index):
        """Insert ``module`` before the child at ``index``.

        Parameters
        ----------
        module : Module
            The child to insert.
        index : int
            Its position, as for ``list.insert``.

        Returns
        -------
        Sequential
            ``self``.
        """
        if not isinstance(module, Module):
            raise TypeError(f"{self!r}.insert: expected a Module, got {type(module).__name__}")
        self.modules.insert(index, module)
        self._invalidate()
        return self

    def remove(self, index=-1):
        """Remove and return the child at ``index``.

        Parameters
        ----------
        index : int
            Its position (default: the last child).

        Returns
        -------
        Module
            The removed child.
        """
        m = self.modules.pop(index)
        self._invalidate()
        return m

    def __len__(self):
        return len(self.modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.modules[index])
        return self.modules[index]

    def __iter__(self):
        return iter(self.modules)

    def _fusion_plan(self):
        """Pairs (i, fused) where module i fuses with module i+1 (Linear + activation)."""
        plan = self.__dict__.get("_plan")
        # ``modules`` is a public list: one edited in place (not through add/insert/remove)
        # must not run a plan made for other modules
        if plan is None or self.__dict__.get("_plan_for") != self.modules:
            self.__dict__["_plan_for"] = list(self.modules)
            plan = []
            i, n = 0, len(self.modules)
            while i < n:
                m = self.modules[i]
                nxt = self.modules[i + 1] if i + 1 < n else None
                if nxt is not None and hasattr(m, "can_fuse_with") and m.can_fuse_with(nxt):
                    plan.append((i, True))
                    i += 2
                else:
                    plan.append((i, False))
                    i += 1
            self.__dict__["_plan"] = plan
            # Layers that split their batch over fastnn's threads (Conv2d, MaxPool2d) make
            # the layers beside them that can split (Linear) split too.
            leaves = self.leaves()
            if any(m.always_splits_batch for m in leaves):
                for m in leaves:
                    m.use_batch_split()
        return plan

    def updateOutput(self, input):
        x = input
        mods = self.modules
        for i, fused in self._fusion_plan():
            if fused:
                x = mods[i].forward_fused(x, mods[i + 1])
            else:
                x = mods[i].forward(x)
        self.output = x
        return x

    def set_backward_hook(self, hook: "Callable[[Sequential, int], object] | None") -> None:
        """Call ``hook(self, index)`` during ``backward`` as soon as child ``index`` (the
        first of a fused pair) has run its backward: the parameter gradients of children
        ``index`` and later are then final. ``fastnn.distributed`` starts the allreduce
        of those gradients there, while the earlier children still run. ``None``
        removes it; copies and pickles of the container do not keep it.

        Parameters
        ----------
        hook : callable or None
        """
        if hook is not None and not callable(hook):
            raise TypeError(f"{self!r}.set_backward_hook: expected a callable or None, got "
                            f"{type(hook).__name__}")
        self.__dict__["_backward_hook"] = hook

    def backward(self, input, gradOutput):
        busy = self.__dict__["_busy"]
        if not busy.acquire(False):
            raise _concurrent_use(self, "backward")
        try:
            mods = self.modules
            hook = self.__dict__.get("_backward_hook")
            g = gradOutput
            last = len(mods)
            for i, fused in reversed(self._fusion_plan()):
                if g is None:  # module ``last`` skipped its input gradient (gradInput = None)
                    self._stop_before(last)
                    break
                last = i
                inp = input if i == 0 else mods[i - 1].output
                if fused:
                    g = mods[i].backward_fused(inp, g, mods[i + 1])
                else:
                    g = mods[i].backward(inp, g)
                if hook is not None:
                    hook(self, i)
            self.__dict__["gradInput"] = g  # None here is not this container's own choice
            return g
        finally:
            busy.release()

    def updateGradInput(self, input, gradOutput):
        # Torch7 semantics: gradInput only, parameters untouched.
        mods = self.modules
        g = gradOutput
        for i in range(len(mods) - 1, -1, -1):
            if g is None:
                self._stop_before(i + 1)
                break
            inp = input if i == 0 else mods[i - 1].output
            g = mods[i].updateGradInput(inp, g)
        self.__dict__["gradInput"] = g
        return g

    def accGradParameters(self, input, gradOutput):
        mods = self.modules
        g = gradOutput
        for i in range(len(mods) - 1, -1, -1):
            if g is None:
                self._stop_before(i + 1)
                break
            inp = input if i == 0 else mods[i - 1].output
            mods[i].accGradParameters(inp, g)
            g = mods[i].gradInput

    def _stop_before(self, index):
        """Module ``index`` skipped its input gradient (``gradInput = None``): the
        modules before it get none, which only parameter-free modules may do without."""
        trained = [m for m in self.modules[:index] for leaf in m.leaves()
                   if leaf.getParameters()]
        if trained:
            raise ValueError(
                f"{self!r}: module ({index}) {self.modules[index]!r} has gradInput = None, so "
                f"module {trained[0]!r} before it would get no gradient; set gradInput = None "
                f"on the first module only")

    def __repr__(self):
        lines = [f"Sequential ({len(self.modules)} modules)"]
        for i, m in enumerate(self.modules):
            child = repr(m).replace("\n", "\n     ")
            lines.append(f"  ({i}) {child}")
        return "\n".join(lines)


# attributes that only these methods may change (see Module.__setattr__)
_SET_BY_METHODS = {"dtype": ".type(), .float() or .double()", "backend": ".cuda() or .cpu()"}
