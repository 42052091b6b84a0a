"""CPU kernels, one module per op family. Import the family you need:
``from fastnn.kernels.cpu import affine``."""

import os as _os

from .._cache_guard import drop_stale_cache as _drop_stale_cache

_drop_stale_cache(_os.path.dirname(__file__))
