"""Training: ``fit`` (``loop.py``) and its callbacks (``callbacks.py``), ``History``
(``history.py``), checkpoints (``checkpoint.py``), ``evaluate``/``predict``
(``evaluate.py``)."""
from .callbacks import Callback
from .checkpoint import load_checkpoint, load_parameters, save_checkpoint, save_parameters
from .evaluate import evaluate, predict
from .history import History
from .loop import TrainingDiverged, TrainingRun, fit

__all__ = ["fit", "evaluate", "predict", "History", "TrainingDiverged", "TrainingRun",
           "Callback", "save_checkpoint", "load_checkpoint", "save_parameters",
           "load_parameters"]
