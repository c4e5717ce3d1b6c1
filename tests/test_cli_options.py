"""Global options before or after the command, the data folder's defaults, logging levels."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from siamrec.config import resolve_settings
from siamrec.errors import ConfigError
from tests.cli import assert_one_error_line, invoke


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_home_and_json_work_on_either_side_of_the_command(tmp_path: Path, before: bool) -> None:
    home = tmp_path / "elsewhere"
    args = ["--home", str(home), "--json", "info"] if before else ["info", "--home", str(home), "--json"]
    result = invoke(*args, env={**os.environ, "SIAMREC_HOME": str(tmp_path / "env-home")}, check=True)
    assert json.loads(result.stdout)["store"] == str(home / "store")


def test_home_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "home"
    not_a_folder.write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        resolve_settings(home=str(not_a_folder))


def test_defaults_follow_the_platform_unless_a_legacy_home_exists(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SIAMREC_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings = resolve_settings()
    assert (settings.home, settings.cache_dir) == (tmp_path / "data" / "siamrec", tmp_path / "cache" / "siamrec")
    (tmp_path / ".siamrec").mkdir()  # a store made by an earlier siamrec keeps being used
    settings = resolve_settings()
    assert (settings.home, settings.cache_dir) == (tmp_path / ".siamrec", tmp_path / ".siamrec" / "cache")


@pytest.mark.parametrize(("flags", "level"), [([], logging.WARNING), (["-v"], logging.INFO), (["-vv"], logging.DEBUG),
                                              (["-q"], logging.ERROR)])  # fmt: skip
def test_verbosity_sets_the_siamrec_log_level(tmp_path: Path, flags: list[str], level: int) -> None:
    invoke(*flags, "info", "--home", str(tmp_path), check=True)
    assert logging.getLogger("siamrec").level == level


def test_a_bad_option_value_is_one_line() -> None:
    result = invoke("recommend", "--playlist", "x", "-k", "0")
    assert result.returncode == 2
    assert assert_one_error_line(result, alone=True).startswith("siamrec: error: Invalid value for '-k'")
