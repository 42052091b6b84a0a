"""Optional dependencies: an import that names the pip extra providing it when missing."""
import importlib

#: The distribution name on PyPI ("fastnn" there is another project); extras hang off it.
DISTRIBUTION = "fastnn-torch7"


def require(module: str, extra: str, what: str):
    """Import ``module`` for ``what`` (e.g. ``"History.plot"``), or raise an ImportError
    that says which extra installs it.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"matplotlib.figure"``.
    extra : str
        The extra of fastnn's distribution that installs it, e.g. ``"plot"``.
    what : str
        The feature that needs it, named in the error.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        ``"<what> needs <package>: pip install 'fastnn-torch7[<extra>]'"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise ImportError(f"{what} needs {package}, which is not installed: "
                          f"pip install '{DISTRIBUTION}[{extra}]' (or pip install {package})"
                          ) from exc
