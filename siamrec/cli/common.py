"""Pieces every command shares: store/model options, JSON output, rich console and progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from siamrec.config import Settings, resolve_settings
from siamrec.names import quoted

console = Console(stderr=True)
stdout = Console()
F = TypeVar("F", bound=Callable[..., Any])


def console_error(message: str) -> None:
    """One line on stderr, no markup interpretation (paths may contain brackets)."""
    sys.stderr.write(f"siamrec: error: {message}\n")


def store_options(func: F | None = None, *, model_option: bool = True) -> Any:
    """--home, --qdrant-url, --qdrant-api-key, --model, --device → one Settings `settings` kwarg.

    `model_option=False` leaves --model out, for commands where it means something else (bench's methods).
    """
    if func is None:
        return functools.partial(store_options, model_option=model_option)
    options = [
        click.option("--home", envvar="SIAMREC_HOME", help="Data folder (default ~/.siamrec)."),
        click.option("--qdrant-url", envvar="SIAMREC_QDRANT_URL", help="Qdrant server or cluster URL."),
        click.option("--qdrant-api-key", envvar="SIAMREC_QDRANT_API_KEY", help="Qdrant API key."),
        click.option(
            "--device",
            type=click.Choice(["auto", "cpu", "cuda"]),
            default="auto",
            show_default=True,
            help="Where ONNX inference runs.",
        ),
    ]
    if model_option:
        options.append(
            click.option("--model", "model", envvar="SIAMREC_MODEL", help="ONNX encoder (default: shipped).")
        )

    @functools.wraps(func)  # keeps options declared below this decorator (click stores them on func)
    def wrapper(**kwargs: Any) -> Any:
        kwargs["settings"] = resolve_settings(
            home=kwargs.pop("home"),
            qdrant_url=kwargs.pop("qdrant_url"),
            qdrant_api_key=kwargs.pop("qdrant_api_key"),
            model=kwargs.pop("model", None),
            device=kwargs.pop("device"),
        )
        return func(**kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def print_failures(failed: list[tuple[str, str]]) -> None:
    """One plain line per skipped item (no wrapping or markup, so each stays greppable)."""
    for where, reason in failed:
        sys.stderr.write(f"skipped: {reason if quoted(where) in reason else f'{quoted(where)}: {reason}'}\n")


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def progress(transient: bool = False) -> Progress:
    """A rich progress bar on stderr (so --json stdout stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


__all__ = ["Settings", "console", "stdout", "store_options", "json_option", "print_json", "progress"]
