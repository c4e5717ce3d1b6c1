"""The `siamrec` command: a click group that imports a subcommand's module only when that command runs.

`siamrec --help` and `--version` load click and this file alone (see benchmarks/cli_startup.py); each
command module imports what it uses.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from siamrec import __version__
from siamrec.errors import SiamrecError

# name → (module under siamrec.cli, attribute, one-line help shown by `siamrec --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "add-track": ("add", "add_track", "Add audio files or folders to the store: decode, embed, upsert."),
    "playlist": ("playlist", "playlist_group", "Create, import, list and show playlists."),
    "recommend": ("recommend", "recommend", "Recommend new tracks for a playlist, or playlists for a track."),
    "feedback": ("feedback", "feedback", "Keep or reject recommended tracks for a playlist (ranking learns)."),
    "sync-playlists": ("sync", "sync_playlists", "Sync playlists from MPD, Spotify, Subsonic, M3U or folders."),
    "publish": ("publish", "publish", "Write recommendations back as playlists, to a Subsonic server or Spotify."),
    "adapt": ("adapt", "adapt", "Fit a metric to the stored playlists (recommend then ranks with it)."),
    "bench": ("bench", "bench", "Score the encoder on the stored playlists (masked protocol)."),
    "map": ("bench", "map_command", "Draw the library in 2-D, coloured by playlist."),
    "train": ("train", "train_command", "Train a SimSiam encoder on audio (needs siamrec[train])."),
    "export": ("export_model", "export", "Export a training checkpoint to one ONNX file."),
    "project": ("project", "project", "Write a metric fitted on a store's playlists into a copy of a model."),
    "info": ("info", "info", "What the store holds and which model made it."),
    "serve": ("serve", "serve", "Serve the recommender over HTTP (needs siamrec[serve])."),
    "store": ("store", "store_group", "Look after the embedded store: backup, restore, migrate."),
}


# A missing optional package → the extra that brings it (pyproject.toml's optional-dependencies).
EXTRA_OF_PACKAGE = {
    "torch": "train",
    "torchaudio": "train",
    "torchvision": "train",
    "timm": "train",
    "pedalboard": "train",
    "onnx": "train",
    "onnxscript": "train",
    "librosa": "bench",
    "matplotlib": "bench",
    "sklearn": "bench",
    "yt_dlp": "fetch",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "python_multipart": "serve",
    "ray": "ray",
}


# A group called without its command (click >= 8.2 raises this to show the help; older click prints it).
NO_COMMAND: type[Exception] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())


class LazyGroup(click.Group):
    """click's lazy-loading group pattern: commands are listed from COMMANDS and imported on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"siamrec.cli.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from COMMANDS' help lines, so `--help` imports no command module."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])


# The global options, declared once: the group takes each before the command, and a command that uses them
# (siamrec.cli.common.store_options, json_option) after it too, where the value given after wins.
GLOBAL_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "home": (("--home",), {"help": "Data folder [env SIAMREC_HOME; default: the platform's data folder]."}),
    "qdrant_url": (("--qdrant-url",), {"help": "Qdrant server or cluster URL [env SIAMREC_QDRANT_URL]."}),
    "qdrant_api_key": (("--qdrant-api-key",), {"help": "Qdrant API key [env SIAMREC_QDRANT_API_KEY]."}),
    "model": (("--model",), {"help": "ONNX encoder [env SIAMREC_MODEL; default: the shipped model]."}),
    "device": (
        ("--device",),
        {
            "type": click.Choice(["auto", "cpu", "cuda"]),
            "help": "Where ONNX inference runs [default: auto, CUDA when onnxruntime-gpu sees a GPU].",
        },
    ),
    "as_json": (("--json",), {"is_flag": True, "help": "Print one JSON document on stdout."}),
}
F = TypeVar("F", bound=Callable[..., Any])


def global_options(*names: str) -> Callable[[F], F]:
    """click options for the global options `names` (all of them when none is named), declared in GLOBAL_OPTIONS."""

    def decorate(func: F) -> F:
        for name in reversed(names or tuple(GLOBAL_OPTIONS)):
            flags, attributes = GLOBAL_OPTIONS[name]
            func = click.option(*flags, name, **attributes)(func)
        return func

    return decorate


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="siamrec")
@global_options()
@click.option("-v", "--verbose", count=True, help="Log more on stderr (-v: info, -vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Log errors only.")
def cli(verbose: int, quiet: bool, **_: object) -> None:
    """Cold-start music recommendation from what tracks sound like.

    Store options (--home, --qdrant-url, --model, --device) and --json work before or after the command.
    Shell completion: eval "$(_SIAMREC_COMPLETE=bash_source siamrec)" (zsh_source, fish_source too).
    """
    from siamrec.cli.common import console
    from siamrec.logs import configure_logging

    configure_logging(verbose, quiet, console)


def stderr_line(text: str) -> None:
    """One line on stderr as it is, but for control characters, shown escaped: text from outside inside it
    (a name, a server's reply) can neither act on the terminal nor split the line."""
    from siamrec.names import escape_controls

    sys.stderr.write(escape_controls(text) + "\n")
    sys.stderr.flush()


def error_line(message: str) -> None:
    """`siamrec: error: …`, the one line a failed command leaves."""
    stderr_line(f"siamrec: error: {message}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point: any SiamrecError becomes one line on stderr and exit status 1, never a traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        error_line("interrupted")
        sys.exit(130)
    except NO_COMMAND as exc:  # `siamrec` alone: its help and status 2, as click does (git: usage and 1)
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # a bad option or argument: one line, the command's --help tells the rest
        command = exc.ctx.command_path if exc.ctx is not None else "siamrec"
        error_line(f"{exc.format_message()} (see `{command} --help`)")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        error_line(exc.format_message())
        sys.exit(exc.exit_code)
    except SiamrecError as exc:
        error_line(str(exc))
        sys.exit(1)
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in EXTRA_OF_PACKAGE:
            raise
        extra = EXTRA_OF_PACKAGE[package]
        error_line(f"this needs the '{extra}' extra ({package} is not installed): pip install 'siamrec[{extra}]'")
        sys.exit(1)
    except KeyboardInterrupt:
        error_line("interrupted; what was stored is kept, re-run to continue")
        sys.exit(130)
