"""hatch-pyaket: standalone executables for Python projects, built by `hatch build`."""

from __future__ import annotations

__version__ = "0.1.0"
