"""example-app: shows its arguments, stdin and environment, and exits with a chosen code."""

__version__ = "1.0.0"
