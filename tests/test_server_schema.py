"""Property-based check of the two API endpoints against the server's own /openapi.json:
schemathesis generates requests from the schema and every answer must match it, with no
500 among them."""

from __future__ import annotations

import ipaddress
import warnings
from urllib.parse import urlsplit

import pytest
import schemathesis
from _server_support import (
    AUTH,
    photo,
    replay_fixture,
    server_fixture,
)
from hypothesis import HealthCheck, settings

schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI describes the API as OpenAPI 3.1


replay_dir = replay_fixture()
schema_server = server_fixture(sync_timeout=5)


@pytest.fixture(scope="module")
def api_schema(schema_server: str) -> object:
    return schemathesis.from_uri(schema_server + "/openapi.json", base_url=schema_server)


# /openapi.json lists only the two API endpoints (downloads and controls are left out).
# schemathesis 3.39 warns about filter arguments here even when none are passed.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    schema = schemathesis.from_pytest_fixture("api_schema")


def keep_offline(case: schemathesis.Case) -> None:
    """Generated image_url host names would be looked up in DNS: point them at an address
    literal instead, which the server refuses without any lookup (no network in tests)."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("image_url"), str):
        return
    try:
        host = urlsplit(body["image_url"]).hostname
    except ValueError:
        return
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            body["image_url"] = "http://127.0.0.1:9/generated.png"


# Real images (one with a record, one without) and a format the server refuses: generated
# files are swapped for one of them, picked by the generated size, so that the success
# path and the failing task are fuzzed too, not only the refusals of random bytes.
SAMPLES = (photo(0), photo(1), b"GIF89a" + bytes(32))


def mix_in_images(case: schemathesis.Case) -> None:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("image_file"), (bytes, str)):
        pick = len(body["image_file"]) % (len(SAMPLES) + 1)
        if pick < len(SAMPLES):
            body["image_file"] = SAMPLES[pick]


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_matches_its_schema(case: schemathesis.Case) -> None:
    keep_offline(case)
    mix_in_images(case)
    response = case.call_and_validate(headers=AUTH, timeout=30)
    assert response.status_code < 500


@pytest.mark.parametrize(
    "fields",
    [
        {"sync": "1"},
        {"sync": "0", "class_type": "4", "output_type": "3"},
        {"sync": 1, "output_type": 2, "detail_mode": 2, "quality": 2},
        {"sync": 1, "class_type": 3},
    ],
)
def test_answers_to_valid_requests_match_the_schema(api_schema, fields: dict) -> None:
    """Generated requests rarely carry a recorded image; these do, in every mode, and the
    create answer and the task query are both validated against the schema."""
    tasks = "/api/tasks/visual/clothing-segmentation"
    create = api_schema[tasks]["POST"].make_case(
        body={"image_file": SAMPLES[0], **fields},
        media_type="multipart/form-data",
        headers=dict(AUTH),
    )
    answer = create.call_and_validate(timeout=30)
    assert answer.status_code == 200
    task_id = answer.json()["data"]["task_id"]
    query = api_schema[tasks + "/{task_id}"]["GET"].make_case(
        path_parameters={"task_id": task_id}, headers=dict(AUTH)
    )
    assert query.call_and_validate(timeout=30).status_code == 200
