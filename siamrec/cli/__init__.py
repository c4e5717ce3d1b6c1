"""The `siamrec` command: a click group whose subcommands live one module per job in this package."""

from __future__ import annotations

import sys

import click

from siamrec import __version__
from siamrec.cli.common import console_error
from siamrec.errors import SiamrecError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="siamrec")
def cli() -> None:
    """Cold-start music recommendation from what tracks sound like."""


def _register() -> None:
    from siamrec.cli import library

    for command in library.COMMANDS:
        cli.add_command(command)
    for module_name in ("train", "sync", "bench"):
        try:
            module = __import__(f"siamrec.cli.{module_name}", fromlist=["COMMANDS"])
        except ModuleNotFoundError as exc:
            if exc.name != f"siamrec.cli.{module_name}":
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Entry point: any SiamrecError becomes one line on stderr and exit status 1, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        console_error("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SiamrecError as exc:
        console_error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        console_error("interrupted; what was stored is kept, re-run to continue")
        sys.exit(130)
