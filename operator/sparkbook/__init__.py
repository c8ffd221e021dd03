"""Sparkbook: Jupyter notebooks wired to Spark Connect sessions on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sparkbook")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
