"""Pieces every command shares: store/model options, JSON output, rich console and progress bars.

Everything a command shows goes through here: the two consoles, the one-line writers and the progress bars.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console, ConsoleOptions, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.segment import Segment
from rich.text import Text

from siamrec.cli import error_line, global_options, stderr_line
from siamrec.config import Settings, resolve_settings
from siamrec.names import escape_controls, quoted

MULTILINE = "\n\t"  # the control characters a console may be given: rich lays them out itself


class EscapingConsole(Console):
    """A rich Console that shows control characters as escapes (`\\x1b`): outside text cannot drive the terminal.

    A playlist name such as ESC ] 0;… BEL ESC [2J would set the window title and clear the screen. Strings
    are escaped before layout, so table cells and titles keep their widths; every other text segment (a Text
    built elsewhere, a log record) is escaped as it is rendered, so nothing slips by. rich's own control
    segments (a progress bar's cursor moves) and its styles are not text and pass as they are.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(escape_controls(text, MULTILINE), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None:
                text = escape_controls(segment.text, MULTILINE)
                if text != segment.text:
                    segment = Segment(text, segment.style)
            yield segment


# Outside text (names, tags, titles) is data: no console interprets markup, emoji codes or highlighting,
# nor lets a control character through. Styled pieces are built as rich Text; everything is shown literally.
console = EscapingConsole(stderr=True, markup=False, emoji=False, highlight=False)
stdout = EscapingConsole(markup=False, emoji=False, highlight=False)
NARROW = 100  # below this many columns, tables switch to their compact layout
F = TypeVar("F", bound=Callable[..., Any])
SETTINGS_KEYS = ("home", "qdrant_url", "qdrant_api_key", "model", "device")
console_error = error_line  # one `siamrec: error:` line on stderr, control characters escaped


def root_option(name: str) -> Any:
    """A global option given before the subcommand (`siamrec --home X info`), or None."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get(name) if ctx is not None else None


def store_options(func: F | None = None, *, model_option: bool = True, device_option: bool = True) -> Any:
    """--home, --qdrant-url, --qdrant-api-key, --model, --device → one Settings `settings` kwarg, resolved once.

    Each may also be given before the subcommand; after it wins. `model_option=False` leaves --model out,
    `device_option=False` --device (a command with a device option of its own).
    """
    if func is None:
        return functools.partial(store_options, model_option=model_option, device_option=device_option)
    ours = SETTINGS_KEYS[:3] + ("model",) * model_option + ("device",) * device_option

    @functools.wraps(func)  # keeps options declared below this decorator (click stores them on func)
    def wrapper(**kwargs: Any) -> Any:
        given = {key: kwargs.pop(key, None) if key in ours else None for key in SETTINGS_KEYS}
        merged = {key: value if value is not None else root_option(key) for key, value in given.items()}
        merged["device"] = merged["device"] or "auto"
        kwargs["settings"] = resolve_settings(**merged)
        return func(**kwargs)

    return global_options(*ours)(wrapper)


def quiet() -> bool:
    """-q (before the command): errors only, so no progress bar and no stage line either."""
    return bool(root_option("quiet"))


def print_failures(failed: Iterable[tuple[str, str]]) -> None:
    """One plain line per skipped item (no wrapping or markup, so each stays greppable)."""
    for where, reason in failed:
        stderr_line(f"skipped: {reason if quoted(where) in reason else f'{quoted(where)}: {reason}'}")


def output_file(option: str, suffixes: tuple[str, ...] = ()) -> Callable[[click.Context, Any, Any], Any]:
    """A click callback that checks an output path (folder, permission, suffix) as the options are parsed."""
    from siamrec.paths import check_output_file

    def callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        return None if value is None else check_output_file(value, option, suffixes)

    return callback


def onnx_output_option(help_text: str) -> Callable[[F], F]:
    """`-o/--output FILE.onnx`, required and checked as it is parsed (`export` and `project` write one)."""
    return click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        callback=output_file("--output", (".onnx",)),
        help=help_text,
    )


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 track`, `2 tracks` (or the given plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def json_option(func: F) -> F:
    """--json after the subcommand, or before it (`siamrec --json info`): one JSON document on stdout."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        kwargs["as_json"] = bool(kwargs.get("as_json") or root_option("as_json"))
        return func(**kwargs)

    return global_options("as_json")(wrapper)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def progress(transient: bool = False) -> Progress:
    """A rich progress bar on stderr (so --json stdout stays clean); none at all with -q."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=quiet(),
    )


def stage_line(what: str) -> None:
    """`<what>…` on stderr where no bar or spinner is drawn (a pipe, a log file), so minutes of work are never
    silent; nothing on a terminal (its progress bar says it) nor with -q."""
    if not quiet() and not console.is_terminal:
        stderr_line(f"{what}…")


@contextmanager
def stage(what: str) -> Iterator[None]:
    """A long step without a count: a spinner on a terminal, else its `stage_line`; nothing with -q."""
    if console.is_terminal and not quiet():
        with console.status(what):
            yield
    else:
        stage_line(what)
        yield


__all__ = ["Settings", "console", "stdout", "store_options", "json_option", "plural", "print_json", "progress"]
