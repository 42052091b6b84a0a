"""The data helpers' earlier home, kept so existing code runs unchanged: every name here
is ``fastnn.data``'s (``fastnn.data.mnist``, ``.batches``, ``.augment``)."""
from .data import *  # noqa: F401,F403
from .data import __all__  # noqa: F401
