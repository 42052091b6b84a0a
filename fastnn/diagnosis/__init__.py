"""Why doesn't my net learn? ``diagnose`` runs a battery of checks on a net and its
data; ``watch`` observes a hand-written training loop. Both report ``Finding``s with
stable codes (``CODES``)."""
from .findings import CODES, Diagnosis, Finding
from .battery import diagnose
from .watcher import Watch, watch

__all__ = ["CODES", "Diagnosis", "Finding", "diagnose", "watch", "Watch"]
