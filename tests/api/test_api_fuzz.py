"""Every operation of the API's own OpenAPI spec, called with generated (and malformed) parameters and
bodies by schemathesis: no request may crash the server, and what it answers must match the spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.sinks.api.app import create_app
from bindrift.sinks.api.auth import Principal, TokenSet
from bindrift.sinks.store.sql_store import SqlStore
from tests.detections import detection

ADMIN = "fuzz-admin-token-0123456789"
READ = "fuzz-read-token-0123456789"
# Every answer, with an admin token, a read token or none, must be one the spec documents, in its shape.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> schemathesis.schemas.BaseSchema:
    store = SqlStore(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}")
    pipeline = FindingsPipeline(store)
    pipeline.process(detection())
    pipeline.process(detection(minutes=30, category="Modified Binary Executed"))
    app = create_app(store, TokenSet({ADMIN: Principal("fuzzer", "admin"), READ: Principal("reader", "read")}))
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers={"Authorization": f"Bearer {ADMIN}"})


def test_no_request_crashes_the_api(api_schema: schemathesis.schemas.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            for headers in ({"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {READ}"}, {}):
                response = case.call(headers=headers)
                case.validate_response(response, checks=CHECKS)

        call()
