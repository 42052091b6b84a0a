"""The one integer validator every module and option check uses."""
import numpy as np


def positive_int(value, what: str, minimum: int = 1) -> int:
    """``value`` as an ``int``, if it is an integer (Python or NumPy, not a bool) of at
    least ``minimum``.

    Parameters
    ----------
    value : object
        What the caller was given.
    what : str
        What it is, named in the error, e.g. ``"Linear(0, 3): n_in"``.
    minimum : int, default 1
        The smallest value allowed (0 for a padding).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``"<what> must be a positive integer, got <value>"`` (or ``an integer >= minimum``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{what} must be {kind}, got {value!r}")
    return int(value)
