"""``python -m metricaos_sdk.cli``: the ``metricaos`` command."""

from . import cli

cli(prog_name="metricaos")
