"""Containers: ``Container`` (a module made of child modules), ``FlatParameters`` (its
children's arrays in one flat buffer) and ``ParameterList`` (the lists it hands out,
linked to that buffer). ``Sequential`` is in ``sequential.py``; ``fastnn.module``
re-exports these names."""
from operator import is_

import numpy as np

from ._grads import _LAZY_ZERO_GRAD
from .backend import CPUBackend, get_backend
from .module import Module

__all__ = ["Container", "FlatParameters", "ParameterList"]


class Container(Module):
    """A module made of child modules.

    ``getParameters()`` and ``getGradParameters()`` give one list per child, and every
    child's arrays live in one flat buffer (``flatten_parameters``), so that
    ``sgd_momentum``/``adam_optimizer`` update the whole net in one kernel pass.

    Parameters
    ----------
    *modules : Module
        The children, in order.
    """

    def __init__(self, *modules: "Module") -> None:
        super().__init__()
        self.__dict__["modules"] = []
        self.__dict__["_flat"] = None
        for m in modules:
            self.add(m)

    def add(self, module):
        """Append ``module`` as the last child.

        Parameters
        ----------
        module : Module
            The child to add.

        Returns
        -------
        Container
            ``self``, so calls chain.
        """
        if not isinstance(module, Module):
            raise TypeError(f"{self!r}.add: expected a Module, got {type(module).__name__}")
        self.modules.append(module)
        self._invalidate()
        return self

    def _invalidate(self):
        self.__dict__["_flat"] = None
        self.__dict__["_plan"] = None

    # parameters: one list per child, children's arrays live in one flat buffer
    def flatten_parameters(self) -> "FlatParameters":
        """Move every leaf parameter (and gradient) into one contiguous buffer, so that
        the fused optimizer updates the whole net in one kernel pass (Torch7's
        ``getParameters()``). Idempotent: it rebuilds only when children, dtypes or
        devices changed.

        Returns
        -------
        FlatParameters
            The flat buffers and the views the leaves now hold. The container keeps it
            (and nothing else does), so it goes when the container goes.
        """
        flat = self._flat
        if flat is not None and flat.is_current():
            return flat
        leaves = [m for m in self.leaves() if m._param_names]
        backend = self._leaf_backend(leaves)
        dtypes = {m.dtype for m in leaves}
        if len(dtypes) > 1:
            raise ValueError(f"{self!r}: children have mixed dtypes {sorted(map(str, dtypes))}; "
                             f"call .float() or .double() on the container")
        dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        flat = FlatParameters(leaves, backend, dtype)
        self.__dict__["_flat"] = flat
        return flat

    @staticmethod
    def _leaf_backend(leaves):
        return leaves[0].backend if leaves else CPUBackend

    def leaves(self):
        """Every descendant that is not a container, in order (Torch7's ``listModules``
        without the containers): the modules that hold parameters and state.

        Returns
        -------
        list of Module
        """
        out = []
        for m in self.modules:
            out.extend(m.leaves())
        return out

    def named_leaves(self, prefix: str = "") -> list:
        out = []
        for i, m in enumerate(self.modules):
            out.extend(m.named_leaves(f"{prefix}{i}."))
        return out

    def listModules(self) -> list:
        out = [self]
        for m in self.modules:
            out.extend(m.listModules())
        return out

    def getParameters(self):
        return self._nested_lists("getParameters")

    def getGradParameters(self):
        return self._nested_lists("getGradParameters")

    def _nested_lists(self, method):
        """The children's lists, tagged with the container's ``FlatParameters`` (the link
        the optimizer follows to the flat buffers). When every child is a plain fastnn
        leaf module they are built once per flat buffer and children list (the optimizer
        asks for them every step) and copied on each call, so that callers may edit them.
        Lazy zeroing reads gradients through their descriptors, which must run, so it
        takes the slow path."""
        flat = self.flatten_parameters()
        if _LAZY_ZERO_GRAD["ever"]:
            return _tagged(self._nested(method), flat)
        cached = flat._lists.get(method)
        if cached is None or cached[0] != self.modules:
            nested = self._nested(method)
            if not all(type(m).getParameters is Module.getParameters and
                       type(m).getGradParameters is Module.getGradParameters
                       for m in self.modules):
                return _tagged(nested, flat)
            flat._lists[method] = cached = (list(self.modules), nested)
        out = ParameterList(_copy_lists(cached[1]))  # _tagged, inlined: this runs every step
        out.flat = flat
        return out

    def _nested(self, method):
        # children's lists without letting a nested container re-flatten its leaves
        return [m._nested(method) if isinstance(m, Container) else getattr(m, method)()
                for m in self.modules]

    def zeroGradParameters(self):
        flat = self._flat
        if _LAZY_ZERO_GRAD["enabled"] or flat is None or not flat.is_current():
            for m in self.modules:
                m.zeroGradParameters()
            return
        # one fill over the flat gradient buffer instead of one per array
        self.backend.kernels.elementwise.fill(flat.grads, 0.0)
        if _LAZY_ZERO_GRAD["ever"]:  # only lazy zeroing leaves zeros pending
            for m, *_ in flat.views:
                m.__dict__["_grad_zero_pending"] = False

    def train(self):
        self.training = True
        for m in self.modules:
            m.train()
        return self

    def evaluate(self):
        self.training = False
        for m in self.modules:
            m.evaluate()
        return self

    def type(self, dtype):
        for m in self.modules:
            m.type(dtype)
        self.__dict__["dtype"] = np.dtype(dtype)
        self._invalidate()
        return self

    def cuda(self):
        for m in self.modules:
            m.cuda()
        self.__dict__["backend"] = self.modules[0].backend if self.modules else get_backend("cuda")
        self._invalidate()
        return self

    def cpu(self):
        for m in self.modules:
            m.cpu()
        self.__dict__["backend"] = CPUBackend
        self._invalidate()
        return self

    def __getstate__(self):
        state = super().__getstate__()
        state["_flat"] = None
        state["_plan"] = None
        state.pop("_backward_hook", None)  # Sequential.set_backward_hook: not copied
        return state


class FlatParameters:
    """A container's parameters and gradients in two flat buffers (Torch7's
    ``getParameters()``), and the per-parameter views its leaves hold.

    ``Container.flatten_parameters()`` builds it and the container keeps it; the lists
    ``getParameters()``/``getGradParameters()`` hand out carry it (``ParameterList.flat``),
    which is how an optimizer knows it may update the flat buffers in one pass.

    Parameters
    ----------
    leaves : list of Module
        The parameterised leaves, in ``Container.leaves()`` order.
    backend : CPUBackend or CUDABackend
        Where the buffers live (the leaves' device).
    dtype : numpy.dtype
        The leaves' common dtype.

    Attributes
    ----------
    params, grads : array of shape (total,)
        The flat parameter and gradient buffers.
    views : list of tuple
        ``(module, param_name, param_view, grad_name, grad_view)`` per parameter, in order.
    param_views, grad_views : list of array
        The views alone, in the order ``getParameters()`` flattens to.

    Examples
    --------
    >>> import fastnn
    >>> net = fastnn.Sequential(fastnn.Linear(3, 2), fastnn.ReLU(), fastnn.Linear(2, 1))
    >>> flat = net.flatten_parameters()
    >>> flat.params.shape, net.getParameters().flat is flat
    ((11,), True)
    """

    __slots__ = ("params", "grads", "views", "param_views", "grad_views", "_checks", "_lists")

    def __init__(self, leaves, backend, dtype):
        total = sum(int(np.prod(m.__dict__[n].shape)) for m in leaves for n in m._param_names)
        self.params = flat_p = backend.empty((total,), dtype)
        self.grads = flat_g = backend.zeros((total,), dtype)
        views = []
        off = 0
        for m in leaves:
            for pn, gn in zip(m._param_names, m._grad_names):
                p = m.__dict__[pn]
                n = int(np.prod(p.shape))
                view_p = flat_p[off:off + n].reshape(p.shape)
                view_g = flat_g[off:off + n].reshape(p.shape)
                if backend is CPUBackend:
                    view_p[...] = p
                    view_g[...] = m.__dict__["_raw_" + gn]
                else:
                    view_p.copy_to_device(p)
                    view_g.copy_to_device(m.__dict__["_raw_" + gn])
                m._rebind(pn, view_p)
                m._rebind(gn, view_g)
                views.append((m, pn, view_p, gn, view_g))
                off += n
        self.views = views
        self.param_views = [v[2] for v in views]
        self.grad_views = [v[4] for v in views]
        # what is_current compares, with the dict keys spelled out once
        self._checks = [(m.__dict__, pn, vp, "_raw_" + gn, vg) for m, pn, vp, gn, vg in views]
        self._lists = {}  # the nested lists per method, see Container._nested_lists

    def __getitem__(self, key):
        # the dict-style access of older code: flat["params"], flat["grads"], flat["views"]
        if key not in ("params", "grads", "views"):
            raise KeyError(key)
        return getattr(self, key)

    def is_current(self) -> bool:
        """True while the leaves still hold these views (no dtype or device move since).

        Returns
        -------
        bool
        """
        return all(d[pn] is vp and d[raw_gn] is vg for d, pn, vp, raw_gn, vg in self._checks)

    def holds(self, variables: list, gradients: list) -> bool:
        """True if ``variables``/``gradients`` (flat lists) are exactly these views, in
        order, and the leaves still hold them: then updating ``params`` from ``grads``
        updates every one of them.

        Parameters
        ----------
        variables, gradients : list of array
            Flat lists, as the optimizer sees them.

        Returns
        -------
        bool
        """
        pv, gv = self.param_views, self.grad_views
        return len(variables) == len(pv) == len(gradients) and \
            all(map(is_, variables, pv)) and all(map(is_, gradients, gv)) and self.is_current()


class ParameterList(list):
    """The list a container's ``getParameters()``/``getGradParameters()`` returns: a
    plain list of the children's lists, plus ``flat``, the container's
    ``FlatParameters`` (the optimizer's explicit link to the flat buffers).

    Attributes
    ----------
    flat : FlatParameters
        The record the arrays are views of.
    """

    __slots__ = ("flat",)

    def __reduce__(self):
        # copies and pickles are plain lists: the link is to this container's buffers
        return list, (list(self),)


def _tagged(items, flat):
    # list's own constructor (no Python __init__): getParameters runs every step
    out = ParameterList(items)
    out.flat = flat
    return out


def _copy_lists(nested):
    return [_copy_lists(x) if type(x) is list else x for x in nested]

