"""JSON-safe values for histories and checkpoint metadata."""
import math

import numpy as np


def jsonable(obj):
    """``obj`` with NumPy scalars as Python numbers and inf/NaN as JSON-safe values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
    return obj
