"""The corpus source lists: each parses, and no Debian package is in two of them.

The model card's claims rest on this: the default model is trained on the train list only, validated on the dev
list, and the independent list checks both on music that no choice was made on.
"""

from __future__ import annotations

import importlib.util
import sys
from itertools import combinations
from pathlib import Path
from types import ModuleType

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "scripts" / "corpus"
SETS = ("dev", "train", "independent")


def _build_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS / "build_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def packages() -> dict[str, set[str]]:
    build_corpus = _build_corpus()
    return {name: set(build_corpus.load_source_list(CORPUS / f"sources_{name}.json").packages()) for name in SETS}


def test_every_list_parses_and_names_its_packages(packages: dict[str, set[str]]) -> None:
    assert {name: len(found) for name, found in packages.items()} == {"dev": 30, "train": 90, "independent": 6}


@pytest.mark.parametrize(("first", "second"), list(combinations(SETS, 2)))
def test_no_package_is_in_two_lists(packages: dict[str, set[str]], first: str, second: str) -> None:
    assert packages[first] & packages[second] == set()
