"""inventory_service on the real broker and store: who may stock a pharmacy; codes unique in the catalogue.

Commands go through the broker as the gateway sends them (RpcClient: writes on the partition of what
they change), so what is tested is what the gateway meets, one writer per partition included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
import pytest

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, rpc_client, stored

from contracts import topology
from contracts.codes import ATC, PZN, Code
from contracts.commands import (
    AddPharmacyStaff,
    CreateMedication,
    CreatePharmacy,
    ListMedications,
    ListPharmacies,
    ListPharmacyStaff,
    ListStock,
    MedicationView,
    PharmacyStaffView,
    PharmacyView,
    RemovePharmacyStaff,
    SetStock,
    StockView,
    UpdateMedication,
)
from contracts.events import Location, PharmacyStaffAdded, PharmacyStaffRemoved
from inventory_service import store
from inventory_service.app import build
from inventory_service.handlers import InventorySettings
from service_runtime.errors import CommandRefused
from service_runtime.messaging import RpcClient
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Start = Callable[[Service], Awaitable[Service]]
HERE = Location(latitude=52.52, longitude=13.405)
PZN_VALID = "01234562"  # check digit worked by hand in tests/unit/test_fhir_import.py


async def medication(rpc: RpcClient, name: str, *codes: Code) -> MedicationView:
    command = CreateMedication(
        name=name, strength="5 mg", form="tablet", price_cents=500, prescription_only=True, codes=codes
    )
    created: MedicationView = await rpc.ask(command, MedicationView)
    return created


async def refusal(asked: Awaitable[object]) -> CommandRefused:
    with pytest.raises(CommandRefused) as refused:
        await asked
    return refused.value


async def journal_waiting(namespace: Namespace) -> int:
    """How many events wait in the journal's queue (no archiver runs here)."""
    connection = await aio_pika.connect(namespace.backing.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.journal_queue(namespace.name), passive=True)
        return queue.declaration_result.message_count or 0


async def test_a_pharmacist_of_another_pharmacy_is_refused_and_its_staff_and_admins_are_not(
    namespace: Namespace, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    service = await running(build(settings))
    async with rpc_client(settings) as rpc:
        mitte = await rpc.ask(
            CreatePharmacy(name="Mitte", address="1 Str", location=HERE, founder_id="anna"), dict
        )
        wedding = await rpc.ask(
            CreatePharmacy(name="Wedding", address="2 Str", location=HERE, founder_id="bruno"), dict
        )
        drug = await medication(rpc, "Ramipril")

        def stock(by: str, quantity: int, *, admin: bool = False) -> SetStock:
            return SetStock(
                pharmacy_id=mitte["id"],
                medication_id=drug.id,
                quantity=quantity,
                actor_id=by,
                actor_is_admin=admin,
            )

        by_its_own = await rpc.ask(stock("anna", 10), StockView)
        refused = await refusal(rpc.ask(stock("bruno", 99), StockView))
        by_an_admin = await rpc.ask(stock("root", 12, admin=True), StockView)

    assert by_its_own.quantity == 10
    assert (refused.code, refused.detail) == (
        "forbidden",
        f"only the staff of pharmacy {mitte['id']} or an admin may change its stock",
    )
    assert by_an_admin.quantity == 12
    kept = await stored(store.stores(service).pharmacies, mitte["id"])
    assert kept is not None
    assert (kept["staff"], kept["stock"][drug.id]["available"]) == (["anna"], 12)
    other = await stored(store.stores(service).pharmacies, wedding["id"])
    assert other is not None
    assert (other["staff"], other["stock"]) == (["bruno"], {})


async def test_staff_changes_are_announced_once_each_and_wait_for_the_journal(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    service = await running(build(settings))
    async with rpc_client(settings) as rpc:
        # An admin opens it: nobody on its staff, nothing announced.
        pharmacy = await rpc.ask(CreatePharmacy(name="Mitte", address="1 Str", location=HERE), dict)
        add = AddPharmacyStaff(pharmacy_id=pharmacy["id"], user_id="anna", actor_id="root")
        added = await rpc.ask(add, PharmacyStaffView)
        again = await rpc.ask(add.model_copy(update={"request_id": "another"}), PharmacyStaffView)
        await rpc.ask(AddPharmacyStaff(pharmacy_id=pharmacy["id"], user_id="bruno", actor_id="root"), dict)
        removed = await rpc.ask(
            RemovePharmacyStaff(pharmacy_id=pharmacy["id"], user_id="anna", actor_id="root"),
            PharmacyStaffView,
        )
        await rpc.ask(RemovePharmacyStaff(pharmacy_id=pharmacy["id"], user_id="anna", actor_id="root"), dict)
        listed = await rpc.ask(ListPharmacyStaff(pharmacy_id=pharmacy["id"]), PharmacyStaffView)
        refused_stock = await refusal(
            rpc.ask(
                SetStock(pharmacy_id=pharmacy["id"], medication_id="x", quantity=1, actor_id="anna"), dict
            )
        )
        unknown = await refusal(rpc.ask(ListPharmacyStaff(pharmacy_id="nowhere"), dict))

    assert (added.staff, again.staff, removed.staff, listed.staff) == (
        ("anna",),
        ("anna",),
        ("bruno",),
        ("bruno",),
    )
    assert refused_stock.code == "not_found"  # no such medication: asked before who asks
    assert unknown.code == "not_found"
    await probe.wait_for(PharmacyStaffRemoved, correlation_id=pharmacy["id"])
    await probe.caught_up()
    announced = [
        (e.type, e.payload["user_id"], e.correlation_id)
        for e in probe.seen
        if e.type in (PharmacyStaffAdded.TYPE, PharmacyStaffRemoved.TYPE)
    ]
    assert announced == [
        (PharmacyStaffAdded.TYPE, "anna", pharmacy["id"]),
        (PharmacyStaffAdded.TYPE, "bruno", pharmacy["id"]),
        (PharmacyStaffRemoved.TYPE, "anna", pharmacy["id"]),
    ]
    # No service takes them: the journal's queue does, archiver or not.
    assert await journal_waiting(namespace) == 3
    kept = await stored(store.stores(service).pharmacies, pharmacy["id"])
    assert kept is not None
    assert (kept["staff"], kept.get("outbox") or {}) == (["bruno"], {})


async def test_a_pharmacist_who_opens_a_pharmacy_is_stored_and_announced_as_its_first_staff(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    service = await running(build(settings))
    async with rpc_client(settings) as rpc:
        command = CreatePharmacy(
            name="Mitte", address="1 Str", location=HERE, founder_id="anna", request_id="r-1"
        )
        pharmacy = await rpc.ask(command, dict)
        # Delivered again (a retry with the same request): the same pharmacy, joined once.
        again = await rpc.ask(command, dict)

    joined = await probe.wait_for(PharmacyStaffAdded, correlation_id=pharmacy["id"])
    assert again["id"] == pharmacy["id"]
    assert PharmacyStaffAdded.model_validate(joined.payload) == PharmacyStaffAdded(
        pharmacy_id=pharmacy["id"], user_id="anna", added_by="anna"
    )
    await probe.caught_up()
    assert len(probe.of_type(PharmacyStaffAdded)) == 1
    kept = await stored(store.stores(service).pharmacies, pharmacy["id"])
    assert kept is not None
    assert kept["staff"] == ["anna"]


async def test_a_code_another_medication_carries_is_a_conflict_and_nothing_is_written(
    namespace: Namespace, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    service = await running(build(settings))
    pzn = Code(system=PZN, code=PZN_VALID)
    async with rpc_client(settings) as rpc:
        first = await medication(rpc, "Ramipril", pzn, Code(system=ATC, code="C09AA05"))
        other = await medication(rpc, "Enalapril")
        taken_on_create = await refusal(medication(rpc, "Ramipril generic", pzn))
        taken_on_change = await refusal(
            rpc.ask(UpdateMedication(medication_id=other.id, codes=(pzn,)), MedicationView)
        )
        invalid = await refusal(medication(rpc, "Bad code", Code(system=PZN, code="01234563")))
        found = await rpc.ask(ListMedications(code=pzn), list[MedicationView])
        # Its own codes again, in another order, with a schedule: no conflict with itself.
        recoded = await rpc.ask(
            UpdateMedication(
                medication_id=first.id,
                codes=(Code(system=ATC, code="C09AA05"), pzn),
                sets_schedule=True,
                schedule="IV",
            ),
            MedicationView,
        )

    assert (taken_on_create.code, taken_on_create.field) == ("conflict", "codes.0")
    assert f"PZN {PZN_VALID} is already the code of medication {first.id}" in taken_on_create.detail
    assert (taken_on_change.code, taken_on_change.field) == ("conflict", "codes.0")
    assert (invalid.code, invalid.field) == ("invalid", "codes.0.code")
    assert [m.id for m in found] == [first.id]
    assert (recoded.schedule, [c.code for c in recoded.codes]) == ("IV", ["C09AA05", PZN_VALID])
    medications = store.stores(service).medications
    unchanged = await stored(medications, other.id)
    assert unchanged is not None
    assert (unchanged["codes"], unchanged["version"]) == ([], 1)
    assert await medications.collection.count_documents({}) == 2


async def test_creations_racing_for_one_code_make_one_medication(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    pzn = Code(system=PZN, code=PZN_VALID)
    async with rpc_client(settings) as rpc:
        # Queued before the service starts (the probe declared the queues), so it takes them all at
        # once, as many handlers side by side as its prefetch allows: a race if they were not serial.
        asked = asyncio.gather(
            *(medication(rpc, f"Ramipril {n}", pzn) for n in range(16)), return_exceptions=True
        )
        await asyncio.sleep(0.5)
        service = await running(build(settings))
        outcomes = await asked

    made = [o for o in outcomes if isinstance(o, MedicationView)]
    refused = [o.code for o in outcomes if isinstance(o, CommandRefused)]
    assert (len(made), refused) == (1, ["conflict"] * 15)
    assert await store.stores(service).medications.collection.count_documents({}) == 1


async def test_a_search_by_the_start_of_a_name_finds_those_names_whatever_their_case(
    namespace: Namespace, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    await running(build(settings))
    async with rpc_client(settings) as rpc:
        for name in ("Paracetamol", "paraffin", "Ibuprofen", "Aspirin para"):
            await medication(rpc, name)
        found = await rpc.ask(ListMedications(name_prefix="PARA"), list[MedicationView])
        nothing = await rpc.ask(ListMedications(name_prefix="Zz"), list[MedicationView])

    # By the catalogue's order (name, strength, form), and only by the name's start.
    assert [m.name for m in found] == ["Paracetamol", "paraffin"]
    assert nothing == []


async def test_a_pharmacist_lists_the_pharmacies_they_staff_and_the_whole_stock_of_those_only(
    namespace: Namespace, running: Start
) -> None:
    settings = namespace.settings(InventorySettings)
    await running(build(settings))
    async with rpc_client(settings) as rpc:
        mitte = await rpc.ask(
            CreatePharmacy(name="Mitte", address="1 Str", location=HERE, founder_id="anna"), dict
        )
        await rpc.ask(
            CreatePharmacy(name="Wedding", address="2 Str", location=HERE, founder_id="bruno"), dict
        )
        drugs = [await medication(rpc, name) for name in ("Ramipril", "Amlodipine")]
        for drug, quantity in zip(drugs, (10, 4), strict=True):
            stocked = SetStock(
                pharmacy_id=mitte["id"], medication_id=drug.id, quantity=quantity, actor_id="anna"
            )
            await rpc.ask(stocked, StockView)

        annas = await rpc.ask(ListPharmacies(staff_member="anna"), list[PharmacyView])
        everyone = await rpc.ask(ListPharmacies(), list[PharmacyView])
        shelf = await rpc.ask(ListStock(pharmacy_id=mitte["id"], actor_id="anna"), list[StockView])
        by_an_admin = await rpc.ask(
            ListStock(pharmacy_id=mitte["id"], actor_id="root", actor_is_admin=True), list[StockView]
        )
        refused = await refusal(
            rpc.ask(ListStock(pharmacy_id=mitte["id"], actor_id="bruno"), list[StockView])
        )

    assert [p.name for p in annas] == ["Mitte"]
    assert sorted(p.name for p in everyone) == ["Mitte", "Wedding"]
    assert sorted((s.medication_id, s.quantity) for s in shelf) == sorted(
        [(drugs[0].id, 10), (drugs[1].id, 4)]
    )
    assert [s.medication_id for s in shelf] == sorted(s.medication_id for s in shelf)
    assert by_an_admin == shelf
    assert (refused.code, refused.detail) == (
        "forbidden",
        f"only the staff of pharmacy {mitte['id']} or an admin may see its stock",
    )
