"""`python -m ftsc` runs the CLI."""

from ftsc.cli import run

run()
