"""inventory_service's catalogue on the real store: one medication per name, strength and form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import Namespace, stored

from contracts.base import Command
from contracts.commands import CreateMedication, CreatePharmacy, ListPharmacies, UpdateMedication
from contracts.events import Location
from inventory_service import store
from inventory_service.app import build
from inventory_service.handlers import InventorySettings
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]


async def carried_out(service: Service, message: Command) -> Any:
    reply = await service.commands.dispatch(message.TYPE, message.model_dump_json().encode())
    assert reply.error is None, reply.error
    return reply.data


async def test_renaming_a_medication_to_another_ones_name_strength_and_form_is_refused_as_a_conflict(
    namespace: Namespace, running: Start
) -> None:
    service = await running(build(namespace.settings(InventorySettings)))
    kept = await carried_out(
        service,
        CreateMedication(
            name="Amoxicillin", strength="500 mg", form="capsule", price_cents=420, prescription_only=True
        ),
    )
    other = await carried_out(
        service,
        CreateMedication(
            name="Ibuprofen", strength="200 mg", form="tablet", price_cents=310, prescription_only=False
        ),
    )
    rename = UpdateMedication(
        medication_id=other["id"], name="Amoxicillin", strength="500 mg", form="capsule", request_id="r1"
    )

    reply = await service.commands.dispatch(rename.TYPE, rename.model_dump_json().encode())

    assert reply.error is not None
    assert (reply.error.code, reply.error.detail) == (
        "conflict",
        "a medication with this name, strength and form already exists",
    )
    unchanged = await stored(store.stores(service).medications, other["id"])
    assert unchanged is not None
    assert (unchanged["name"], unchanged["version"]) == ("Ibuprofen", 1)
    assert kept["id"] != other["id"]


async def test_pharmacies_asked_for_by_id_are_those_only_and_a_missing_one_is_left_out(
    namespace: Namespace, running: Start
) -> None:
    service = await running(build(namespace.settings(InventorySettings)))
    opened = [
        await carried_out(
            service,
            CreatePharmacy(
                name=f"Pharmacy {n}", address=f"{n} High Street", location=Location(latitude=n, longitude=n)
            ),
        )
        for n in range(3)
    ]

    found = await carried_out(
        service, ListPharmacies(pharmacy_ids=(opened[2]["id"], "no-such-pharmacy", opened[0]["id"]))
    )

    assert sorted((p["name"], p["address"]) for p in found) == [
        ("Pharmacy 0", "0 High Street"),
        ("Pharmacy 2", "2 High Street"),
    ]
