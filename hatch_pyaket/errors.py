"""Errors raised by the plugin; each one reads as a message a user can act on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One bad setting: where it is (a TOML path), what is wrong, and how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PyaketError(Exception):
    """Base class: the message is meant for the user as it is."""


class ConfigError(PyaketError, ValueError):
    """Every problem found in the configuration, reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"hatch-pyaket: {count} configuration {noun}:\n{lines}")


class ToolchainError(PyaketError, RuntimeError):
    """A tool needed to build a target is missing or unusable."""


class BuildError(PyaketError, RuntimeError):
    """A compile or a download failed."""
