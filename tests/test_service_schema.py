"""Property-based testing of the whole OpenAPI document with Schemathesis, over real HTTP.

Every operation gets generated requests, valid and invalid; every answer must be documented, match its
schema, and never be a 500. The default run keeps the example count small; `pytest -m slow` runs more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from siamrec.config import resolve_settings
from siamrec.service.app import create_app
from siamrec.service.config import ServiceConfig
from tests.service import serving

FAST_EXAMPLES = 6
SLOW_EXAMPLES = 60


CONFIG = ServiceConfig(resolve_settings(), max_upload_bytes=2_000_000)  # the store's place: each test's own
# The document is built from the app itself (the same one the served process answers with, checked below):
# schemathesis' lazy fixture loader does not run on this pytest.
schema = schemathesis.openapi.from_dict(create_app(CONFIG).openapi())


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[str]:
    home = tmp_path_factory.mktemp("schema") / "home"
    with serving(replace(CONFIG, settings=resolve_settings(home=str(home), model=str(tiny_model)))) as base:
        yield base


def test_the_tested_document_is_the_served_one(base_url: str) -> None:
    assert httpx.get(f"{base_url}/openapi.json").json() == schema.raw_schema


def excluded(case: schemathesis.Case) -> list[schemathesis.CheckFunction]:
    """Schema-valid uploads are still refused when their bytes are not audio, and schema-valid `after` cursors
    when the service did not give them (they are opaque), which a schema cannot say."""
    refused = (case.method, case.path) == ("POST", "/tracks") or (
        (case.method, case.path) == ("GET", "/playlists") and "after" in (case.query or {})
    )
    return [positive_data_acceptance] if refused else []


@schema.parametrize()
@settings(max_examples=FAST_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_as_documented(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, excluded_checks=excluded(case))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=SLOW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_as_documented_at_length(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, excluded_checks=excluded(case))
