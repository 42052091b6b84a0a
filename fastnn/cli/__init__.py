"""The ``fastnn`` command: ``main.py`` parses the options and runs a command,
``experiments.py`` holds the autoencoder, PCA and comparison runs, ``common.py`` what
they share."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
