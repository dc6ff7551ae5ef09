"""The ``metricaos`` command line: one click group, one module per command group."""

from __future__ import annotations

import click

from .._version import __version__
from .demo import demo
from .prices import prices

__all__ = ["cli"]


@click.group()
@click.version_option(__version__, prog_name="metricaos")
def cli() -> None:
    """Meter LLM calls: usage, cost and quotas."""


cli.add_command(demo)
cli.add_command(prices)
