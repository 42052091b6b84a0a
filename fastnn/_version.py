"""The version, read by ``fastnn.__version__`` and by setuptools (pyproject.toml's
``[tool.setuptools.dynamic]``): one place to change it."""
__version__ = "0.1.0"
