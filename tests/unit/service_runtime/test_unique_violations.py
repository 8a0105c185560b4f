"""Both stores' ways of saying a write broke a unique index are one exception for the caller."""

from __future__ import annotations

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from service_runtime.store import UniqueViolation, unique_violations

FERRETDB_ON_UPDATE = (
    "[msg_update.go:133 handler.(*Handler).updateDocument] constraint failed: UNIQUE constraint failed: "
    "index 'medications_a38249d3_catalogue_key_1' (2067)"
)


@pytest.mark.parametrize(
    "answer",
    [
        DuplicateKeyError("E11000 duplicate key error", 11000, {"code": 11000}),
        OperationFailure(FERRETDB_ON_UPDATE, 1, {"ok": 0.0, "errmsg": FERRETDB_ON_UPDATE, "code": 1}),
    ],
    ids=["mongodb-and-ferretdb-insert", "ferretdb-update"],
)
def test_a_unique_index_violation_is_raised_as_one_exception(answer: OperationFailure) -> None:
    with pytest.raises(UniqueViolation), unique_violations():
        raise answer


def test_other_store_failures_pass_through_unchanged() -> None:
    other = OperationFailure("no such command", 1, {"ok": 0.0, "errmsg": "internal error", "code": 1})

    with pytest.raises(OperationFailure) as raised, unique_violations():
        raise other

    assert raised.value is other
