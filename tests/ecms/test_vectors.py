"""Every conformance vector against the facade: expected ErrorCode or success, and HTTP status."""

from __future__ import annotations

import json

import pytest

from conformance.ecms.runner import check
from tests.ecms.conftest import VECTORS
from tests.ecms.helpers import body_child, errors

NAMES = sorted(p.stem for p in VECTORS.glob("*.xml"))


def test_every_vector_has_an_expectation():
    assert len(NAMES) >= 30
    for name in NAMES:
        assert (VECTORS / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", NAMES)
async def test_vector(name, facade):
    spec = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    answer = await facade.handle((VECTORS / f"{name}.xml").read_bytes(), caller=spec["caller"])
    expect = spec["expect"]
    assert check(spec, answer.status, answer.body) is None, answer.body[:500]  # status, codes, reads
    assert answer.status == expect["http_status"], answer.body[:500]
    if expect["ok"]:
        assert errors(answer.body) == []
        assert body_child(answer.body).tag == spec["operation"].replace("Request", "") + "Response" \
            if spec["operation"].endswith("Request") else spec["operation"] + "Response"
    else:
        assert errors(answer.body) == [expect["error_code"]]
