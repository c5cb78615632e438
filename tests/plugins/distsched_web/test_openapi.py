"""schemathesis against /api/v1/openapi.json: every operation, generated inputs (valid and
invalid), the responses checked against the document (status codes, content types, bodies),
and never a server error."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from distsched_web.openapi import openapi_document  # noqa: E402

from .conftest import TOKEN, ServerThread  # noqa: E402
from .test_api import JOBS  # noqa: E402

schema = schemathesis.openapi.from_dict(openapi_document())
#: Examples per operation: the same ones every run (derandomized); WEB_FUZZ_EXAMPLES=300
#: explores further (it passed with 300 when this was written).
EXAMPLES = int(os.environ.get("WEB_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def api_server() -> Iterator[ServerThread]:
    server = ServerThread(token=TOKEN, jobs=JOBS).start()
    yield server
    server.stop()


def test_the_served_document_is_the_one_tested(api_server):
    served = httpx.get(f"{api_server.url}/api/v1/openapi.json").json()
    assert served == openapi_document()
    assert served["openapi"].startswith("3.0")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, api_server):
    # positive_data_acceptance is left out: a schema-valid body may still be refused with a
    # 400 naming the field (an "every" of "" or a cron expression that never fires cannot be
    # told apart by JSON Schema). Every other check runs, negative_data_rejection included.
    case.call_and_validate(base_url=api_server.url, headers={"Authorization": f"Bearer {TOKEN}"},
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])
