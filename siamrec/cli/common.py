"""Pieces every command shares: store/model options, JSON output, rich console and progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from siamrec.config import Settings, check_qdrant_url, resolve_settings
from siamrec.names import quoted

# Outside text (names, tags, titles) is data: no console interprets markup, emoji codes or highlighting.
# Styled pieces are built as rich Text; every table cell and message is shown literally.
console = Console(stderr=True, markup=False, emoji=False, highlight=False)
stdout = Console(markup=False, emoji=False, highlight=False)
NARROW = 100  # below this many columns, tables switch to their compact layout
F = TypeVar("F", bound=Callable[..., Any])


def console_error(message: str) -> None:
    """One line on stderr, no markup interpretation (paths may contain brackets)."""
    sys.stderr.write(f"siamrec: error: {message}\n")


def root_option(name: str) -> Any:
    """A global option given before the subcommand (`siamrec --home X info`), or None."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get(name) if ctx is not None else None


def store_options(func: F | None = None, *, model_option: bool = True) -> Any:
    """--home, --qdrant-url, --qdrant-api-key, --model, --device → one Settings `settings` kwarg.

    Each may also be given before the subcommand; after it wins. `model_option=False` leaves --model out.
    """
    if func is None:
        return functools.partial(store_options, model_option=model_option)
    options = [
        click.option("--home", help="Data folder [env SIAMREC_HOME; default: the platform's data folder]."),
        click.option("--qdrant-url", help="Qdrant server or cluster URL [env SIAMREC_QDRANT_URL]."),
        click.option("--qdrant-api-key", help="Qdrant API key [env SIAMREC_QDRANT_API_KEY]."),
        click.option(
            "--device",
            type=click.Choice(["auto", "cpu", "cuda"]),
            default=None,
            help="Where ONNX inference runs [default: auto, CUDA when onnxruntime-gpu sees a GPU].",
        ),
    ]
    if model_option:
        options.append(click.option("--model", "model", help="ONNX encoder [env SIAMREC_MODEL; default: shipped]."))

    @functools.wraps(func)  # keeps options declared below this decorator (click stores them on func)
    def wrapper(**kwargs: Any) -> Any:
        given = {key: kwargs.pop(key, None) for key in ("home", "qdrant_url", "qdrant_api_key", "model", "device")}
        merged = {key: value if value is not None else root_option(key) for key, value in given.items()}
        merged["device"] = merged["device"] or "auto"
        kwargs["settings"] = resolve_settings(**merged)
        if kwargs["settings"].qdrant_url:
            check_qdrant_url(kwargs["settings"].qdrant_url)
        return func(**kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def print_failures(failed: list[tuple[str, str]]) -> None:
    """One plain line per skipped item (no wrapping or markup, so each stays greppable)."""
    for where, reason in failed:
        sys.stderr.write(f"skipped: {reason if quoted(where) in reason else f'{quoted(where)}: {reason}'}\n")


def output_file(option: str, suffixes: tuple[str, ...] = ()) -> Callable[[click.Context, Any, Any], Any]:
    """A click callback that checks an output path (folder, permission, suffix) as the options are parsed."""
    from siamrec.paths import check_output_file

    def callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        return None if value is None else check_output_file(value, option, suffixes)

    return callback


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 track`, `2 tracks` (or the given plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def json_option(func: F) -> F:
    """--json after the subcommand, or before it (`siamrec --json info`): one JSON document on stdout."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        kwargs["as_json"] = bool(kwargs.get("as_json") or root_option("as_json"))
        return func(**kwargs)

    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(wrapper)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def progress(transient: bool = False) -> Progress:
    """A rich progress bar on stderr (so --json stdout stays clean)."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


__all__ = ["Settings", "console", "stdout", "store_options", "json_option", "plural", "print_json", "progress"]
