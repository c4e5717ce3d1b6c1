"""The one way tests run `siamrec` and the one check of its error line.

`run_siamrec` starts a real process (`python -m siamrec`: a real stdin and stdout pipe, native libraries
writing to its real stderr, a store lock held by another process); `invoke` runs the same entry point in
this process, which saves the seconds of imports a process costs. Both return a CompletedProcess, so
`assert_one_error_line` reads either.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

from siamrec.cli import main

ERROR = "siamrec: error:"
SKIPPED = "skipped:"
# rich's progress bar, rendered once at the end when stderr is not a terminal: not a message
PROGRESS_LINE = re.compile(r"^\w[\w ]* +━+ +\d+/\d+ ")


def run_siamrec(
    *args: str | bytes, env: Mapping[str, str] | None = None, check: bool = False, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m siamrec ARGS` in its own process; `env` is its whole environment (default: this one's).

    Other keywords go to subprocess.run (stdin, input, cwd); `check` asserts a zero exit status.
    """
    kwargs.setdefault("stdin", None if "input" in kwargs else subprocess.DEVNULL)
    result = subprocess.run(
        [sys.executable, "-m", "siamrec", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ if env is None else env),
        timeout=timeout,
        **kwargs,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def invoke(*args: str, env: Mapping[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`siamrec ARGS` in this process, through the command's own entry point (its error handling included).

    `env` is the whole environment while it runs (default: this one's); stdout and stderr are captured.
    """
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    environment = mock.patch.dict(os.environ, env or {}, clear=env is not None)
    with environment, redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exited:
            code = exited.code
    status = 1 if isinstance(code, str) else code or 0  # sys.exit("message") means status 1, as in a process
    result = subprocess.CompletedProcess(list(args), status, out.getvalue(), err.getvalue())
    if check:
        assert result.returncode == 0, result.stderr
    return result


def run_until_killed(args: list[str], env: dict[str, str], marker: str) -> None:
    """Start the sync, SIGKILL it as soon as it reports `marker` (it sleeps there), and check it was killed."""
    command = [sys.executable, "-m", "siamrec", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    seen = []
    try:
        for line in process.stderr or []:
            seen.append(line)
            if marker in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        process.wait()
    assert process.returncode == -signal.SIGKILL, f"not killed at {marker!r}:\n{''.join(seen)}"


def stderr_messages(stderr: str) -> list[str]:
    """stderr lines other than blank ones and rich's progress bar."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]


def assert_one_error_line(
    result: subprocess.CompletedProcess[str],
    fragment: str = "",
    prefix: str | tuple[str, ...] = ERROR,
    *,
    alone: bool = False,
) -> str:
    """A failed command: non-zero exit, no traceback, exactly one line starting with `prefix` that holds
    `fragment`; returns that line. `alone`: no other stderr line at all (the progress bar aside)."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = stderr_messages(result.stderr)
    errors = [line for line in lines if line.startswith(prefix)]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], result.stderr
    if alone:
        assert lines == errors, result.stderr
    return errors[0]


def home_env(home: Path, model: Path, **more: str) -> dict[str, str]:
    """This environment with SIAMREC_HOME and SIAMREC_MODEL (and `more`) set: a command's whole environment."""
    return {**os.environ, "SIAMREC_HOME": str(home), "SIAMREC_MODEL": str(model), **more}


def answer(*args: str, env: Mapping[str, str] | None = None) -> Any:
    """The --json document of a command that must succeed, run in this process."""
    return json.loads(invoke(*args, "--json", env=env, check=True).stdout)
