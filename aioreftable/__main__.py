"""`python -m aioreftable`."""

from .cli import run

run()
