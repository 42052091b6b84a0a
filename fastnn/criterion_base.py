"""``Criterion``, the base of the losses (``criterions.py``): forward/backward, reused
buffers, the loss ring a GPU loss is read from (``device_loss``) and the target checks
every criterion shares (class labels or dense rows, label range, one-hot). In its own
file to keep ``criterions.py`` to the concrete losses; ``fastnn.criterions`` re-exports
it."""
import numpy as np

from .backend import CPUBackend, is_cuda_object
from .device_loss import LOSS_RING, DeviceLoss

__all__ = ["Criterion"]


class Criterion:
    """Base class of the losses: ``forward(input, target)`` returns the loss as a float and
    ``backward(input, target)`` returns (and stores in ``gradInput``) its gradient with
    respect to ``input``.

    Subclasses implement ``updateOutput`` and ``updateGradInput``. The loss is averaged
    over the batch (the first dimension): criterions are the only place that divides by the
    batch size. Inputs on the GPU (after ``module.cuda()``) give GPU gradients.

    Attributes
    ----------
    output : float or None
        The last loss.
    gradInput : ndarray or None
        The last gradient, a buffer the criterion reuses (copy it to keep it).
    """

    def __init__(self):
        self.output = None
        self.gradInput = None
        self._buffers = {}
        self._loss_serial = 0
        self._upload_src = None  # the host target the last forward uploaded

    def forward(self, input, target):
        """The loss of ``input`` against ``target``, averaged over the batch.

        Parameters
        ----------
        input : ndarray of shape (N, ...)
            The net's output.
        target : ndarray
            Class indices (N,) of an integer dtype, or rows of the input's shape (one-hot or
            soft labels; ``MSECriterion``: the values to match).

        Returns
        -------
        float
            The loss (also stored in ``output``).
        """
        return self.updateOutput(input, target)

    def backward(self, input, target):
        """The gradient of the loss with respect to ``input``.

        Parameters
        ----------
        input : ndarray of shape (N, ...)
            The net's output, as given to ``forward``.
        target : ndarray
            As for ``forward``.

        Returns
        -------
        ndarray
            The gradient, of ``input``'s shape (also stored in ``gradInput``).
        """
        return self.updateGradInput(input, target)

    def __repr__(self):
        return type(self).__name__

    def __getstate__(self):
        # a copy leaves out instance attributes marked transient (fastnn.watch's wrappers)
        return {k: v for k, v in self.__dict__.items() if not getattr(v, "transient", False)}

    # ---- helpers ----
    def _backend(self, input):
        if not is_cuda_object(input):
            return CPUBackend
        from .backend import get_backend
        return get_backend("cuda")

    def _input(self, input):
        backend = self._backend(input)
        if backend is CPUBackend:
            input = np.asarray(input)
            if input.dtype.kind not in "fiub":
                raise TypeError(f"{self!r}: input must be real numbers, got dtype {input.dtype}")
            dtype = np.float64 if input.dtype == np.float64 else np.float32
        else:
            dtype = np.float64 if np.dtype(input.dtype) == np.float64 else np.float32
        if len(input.shape) == 0:  # np.ascontiguousarray would make it 1-D, unannounced
            raise ValueError(f"{self!r}: got a 0-d input (a scalar); expected a batch (N, ...)")
        x = backend.to_device(input, dtype)
        return backend, x

    def _buffer(self, backend, key, shape, dtype):
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype or \
                not backend.is_device_array(buf):
            buf = backend.empty(tuple(shape), dtype)
            self._buffers[key] = buf
        return buf

    def _loss(self, backend, dtype):
        if backend is CPUBackend:
            return self._buffer(backend, "loss", (1,), dtype)
        ring = self._buffer(backend, "loss ring", (LOSS_RING,), dtype)
        k = self._loss_serial % LOSS_RING
        self._loss_serial += 1
        return ring[k:k + 1]

    def _read_loss(self, loss):
        if isinstance(loss, np.ndarray):
            return float(loss[0])
        serial = self._loss_serial - 1
        return DeviceLoss(self._buffers["loss ring"], serial % LOSS_RING, self, serial)

    def read_device_losses(self, losses: list) -> list:
        """The values of :class:`DeviceLoss` objects this criterion returned, as floats:
        one copy of the loss ring (and one of the check status) for all of them; raises
        the device-side input errors latched since the last read.

        Parameters
        ----------
        losses : list of DeviceLoss
            Losses this criterion's ``forward`` returned on the GPU.

        Returns
        -------
        list of float
        """
        for loss in losses:
            if self._loss_serial - loss.serial > LOSS_RING:
                raise RuntimeError(f"{self!r}: this loss was overwritten on the device by a "
                                   f"later forward; read it (float(loss)) within {LOSS_RING} "
                                   f"forward calls")
        if len(losses) == 1:
            one = losses[0]
            values = [one.ring[one.slot:one.slot + 1].copy_to_host()[0]]
        else:
            rings = {id(v.ring): v.ring for v in losses}  # one, unless the dtype changed
            hosts = {key: ring.copy_to_host() for key, ring in rings.items()}
            values = [hosts[id(v.ring)][v.slot] for v in losses]
        self._raise_device_errors()
        return [float(v) for v in values]

    # ---- device-side checks (GPU) ----
    def _status(self, backend):
        status = self._buffers.get("status")
        if status is None:
            size = backend.kernels.targets.STATUS_SIZE
            status = self._buffer(backend, "status", (size,), np.int64)
            backend.kernels.elementwise.fill(status, 0)
        return status

    def _check_on_device(self, backend, x, labels, kind=None):
        """Latch bad labels (1-D ``labels``; None for dense targets) and raw scores
        (``kind``, ClassNLL's device classification) into the status buffer."""
        backend.kernels.targets.check_targets(labels, x.shape[1], kind, self._status(backend))

    def _raise_device_errors(self):
        status = self._buffers.get("status")
        if status is None:
            return
        s = status.copy_to_host()
        if not s.any():
            return
        from .backend import get_backend
        get_backend("cuda").kernels.elementwise.fill(status, 0)
        if s[3]:  # the CPU criterion's message, for the first bad label latched
            n, c = int(s[5]), int(s[6])
            raise ValueError(f"{self!r}: label {int(s[4])!r} is out of range for input of shape "
                             f"{(n, c)} (labels must lie in [0, {c - 1}])")
        raise ValueError(self._raw_scores_message((int(s[1]), int(s[2]))))

    def _upload(self, backend, key, array, dtype):
        """``array`` (host or device) as a C-contiguous device array of ``dtype``, in a
        reused buffer: a host array is copied in (the batch's own upload), a device
        array of another dtype is cast by a kernel."""
        if is_cuda_object(array):
            if np.dtype(array.dtype) == np.dtype(dtype):
                return backend.to_device(array, dtype)  # the caller's array, or a view of it
            dev = backend.to_device(array, dtype, out=self._buffers.get(key))
            self._buffers[key] = dev  # the cast's own buffer, reused next call
            return dev
        host = np.ascontiguousarray(array, dtype=dtype)
        buf = self._buffer(backend, key, host.shape, dtype)
        buf.copy_to_device(host)
        return buf

    def _device_labels(self, backend, t, target, n):
        """1-D int64 labels on the device. The forward uploads a host target; the
        backward that follows with the same target object reuses the upload."""
        if is_cuda_object(t):
            return self._upload(backend, "labels", t.reshape(n), np.int64)
        if target is self._upload_src and "labels" in self._buffers and \
                tuple(self._buffers["labels"].shape) == (n,):
            self._upload_src = None
            return self._buffers["labels"]
        self._upload_src = target
        return self._upload(backend, "labels", t.reshape(n), np.int64)

    def _target(self, backend, x, target):
        """('index', int64 labels) or ('dense', rows of x's dtype), validated against x."""
        if x.ndim != 2:
            raise ValueError(f"{self!r}: expected 2-D input (N, classes), got shape {tuple(x.shape)}")
        n, c = x.shape
        on_gpu = backend is not CPUBackend
        if on_gpu and is_cuda_object(target) and (
                np.dtype(target.dtype).kind in "iub" or
                (len(target.shape) == 2 and (target.shape[1] != 1 or c == 1))):
            t = target  # integer labels and dense rows stay on the device
        else:
            # float class labels on the GPU come back for the integer check (a rare path)
            t = target if isinstance(target, np.ndarray) else np.asarray(backend.to_numpy(target))
            if not t.dtype.isnative:  # e.g. big-endian labels read from a file: kernels take native
                t = t.astype(t.dtype.newbyteorder("="))
        if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and c != 1):
            if t.shape[0] != n:
                raise ValueError(f"{self!r}: target has {t.shape[0]} labels but the input batch "
                                 f"has {n} rows (input shape {tuple(x.shape)})")
            if t.dtype.kind == "f":
                if not np.all(np.floor(t) == t):
                    raise ValueError(f"{self!r}: 1-D targets must be integer class labels, "
                                     f"got non-integer values such as {t[np.floor(t) != t][0]!r}")
            elif t.dtype.kind not in "iub":
                raise TypeError(f"{self!r}: class labels must be integers, got dtype {t.dtype}")
            if on_gpu:  # range checked on the device (check_targets)
                return "index", self._device_labels(backend, t, target, n)
            t = t.reshape(-1)
            if n:
                bad = self._first_bad_label(t, c)
                if bad is not None:
                    raise ValueError(f"{self!r}: label {bad!r} is out of range for input of shape "
                                     f"{tuple(x.shape)} (labels must lie in [0, {c - 1}])")
            return "index", backend.to_device(t, np.int64)
        if t.ndim == 2:
            if tuple(t.shape) != (n, c):
                raise ValueError(f"{self!r}: target of shape {tuple(t.shape)} does not match "
                                 f"input of shape {tuple(x.shape)} (give class labels of shape "
                                 f"({n},) or one-hot rows of shape ({n}, {c}))")
            if on_gpu:
                return "dense", self._upload(backend, "dense target", t, x.dtype)
            return "dense", backend.to_device(t, x.dtype)
        raise ValueError(f"{self!r}: target must be class labels of shape ({n},) or one-hot rows "
                         f"of shape ({n}, {c}); got shape {tuple(t.shape)}")

    def _raw_scores_message(self, shape):  # ClassNLLCriterion's; here for the device read
        return (f"{self!r}: input of shape {tuple(shape)} is neither log-probabilities (all <= 0) "
                f"nor probabilities (rows >= 0 summing to 1): it looks like raw scores. Put a "
                f"LogSoftMax before ClassNLLCriterion, or use CrossEntropyCriterion on raw scores.")

    def _first_bad_label(self, t, c):
        """The first label outside [0, c), or None. Labels are host arrays here (a GPU
        criterion reads them back first), so the CPU kernel checks them either way."""
        if t.dtype.kind not in "iu" or not t.flags.c_contiguous:
            lo, hi = t.min(), t.max()
            return None if lo >= 0 and hi < c else (lo if lo < 0 else hi).item()
        res = self._buffer(CPUBackend, "first_bad_label", (1,), np.int64)
        CPUBackend.kernels.softmax_nll.first_bad_label(t, c, res)
        return None if res[0] < 0 else t[res[0]].item()

    def _dense_target(self, backend, x, target):
        """Target rows of x's shape and dtype: class labels become one-hot rows."""
        kind, t = self._target(backend, x, target)
        if kind == "index":
            if backend is not CPUBackend:
                self._check_on_device(backend, x, t)
                onehot = self._buffer(backend, "one-hot", x.shape, x.dtype)
                backend.kernels.targets.one_hot(t, onehot)
                return onehot
            onehot = np.zeros(x.shape, x.dtype)
            onehot[np.arange(x.shape[0]), t] = 1
            t = onehot
        return t
