"""inventory_service on the real broker and store, after payment: the pharmacy's dispensing queue, the
final check that sells an order's stock, and stock that comes back from a dispensed order.

Commands go through the broker as the gateway sends them (RpcClient: DispenseOrder on its order's
partition, behind that order's events); events are published as their services publish them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from bson import Int64

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, handled_everything, rpc_client, stored

from contracts.base import Envelope
from contracts.commands import (
    AddPharmacyStaff,
    CreateMedication,
    CreatePharmacy,
    DispenseOrder,
    DispensingView,
    ListDispensingQueue,
    MedicationView,
    Page,
    PharmacyView,
    SetStock,
)
from contracts.events import (
    DeliveryReturned,
    Location,
    OrderCancelled,
    OrderCreated,
    OrderDispensed,
    PaymentApproved,
    PrescribedLine,
    ReservedLine,
    StockReserved,
)
from inventory_service import store
from inventory_service.app import build
from inventory_service.domain import Pharmacy, Reservation
from inventory_service.handlers import InventorySettings
from service_runtime.errors import CommandRefused
from service_runtime.messaging import RpcClient
from service_runtime.service import Service

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Start = Callable[[Service], Awaitable[Service]]

MITTE = Location(latitude=52.52, longitude=13.405)
WEDDING = Location(latitude=52.55, longitude=13.36)
PRICE_CENTS = 450
ON_THE_SHELF = 10
PAID_FROM = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Counter:
    """A running inventory_service with two pharmacies, Mitte (anna, carl) and Wedding (bruno), each
    stocking one medication; a caller that speaks to it as the gateway does."""

    service: Service
    probe: EventProbe
    rpc: RpcClient
    mitte: str
    wedding: str
    medication_id: str

    async def stock(self, pharmacy_id: str) -> Document:
        doc = await stored(store.stores(self.service).pharmacies, pharmacy_id)
        assert doc is not None
        return dict(doc["stock"][self.medication_id])

    async def pharmacy(self, pharmacy_id: str) -> Document:
        doc = await stored(store.stores(self.service).pharmacies, pharmacy_id)
        assert doc is not None
        return doc

    async def reservation(self, order_id: str, state: str) -> Document:
        """The reservation as stored, once in `state`, its sealed fields opened."""
        return await eventually(
            lambda: stored(store.stores(self.service).reservations, order_id),
            lambda doc: doc["state"] == state,
            what=f"the reservation of {order_id} to be {state}",
        )

    async def reserved(
        self, near: Location, *, quantity: int = 3, verified_by: str | None = None
    ) -> OrderCreated:
        """An order of the medication (three units unless asked), held at the pharmacy nearest `near`."""
        order = OrderCreated(
            order_id=str(uuid4()),
            prescription_id=str(uuid4()),
            patient_id=f"patient-{uuid4().hex[:8]}",
            lines=(PrescribedLine(medication_id=self.medication_id, quantity=quantity),),
            delivery_location=near,
            payment_method_id="pm-1",
            verified_by=verified_by,
        )
        await self.probe.publish(order, correlation_id=order.order_id)
        await self.probe.wait_for(StockReserved, correlation_id=order.order_id)
        return order

    async def paid(self, order: OrderCreated, *, at: datetime | None = None) -> Envelope:
        """The card authorised for the order (at `at`, as payment_service stamps it); once PAID."""
        payment = PaymentApproved(
            payment_id=str(uuid4()), order_id=order.order_id, patient_id=order.patient_id, amount_cents=1
        )
        sent = await self.probe.publish(
            payment,
            correlation_id=order.order_id,
            envelope=Envelope.wrap(payment, correlation_id=order.order_id, occurred_at=at),
        )
        await self.reservation(order.order_id, "PAID")
        return sent

    async def dispense(self, order: OrderCreated, by: str, *, admin: bool = False) -> DispensingView:
        view: DispensingView = await self.rpc.ask(
            DispenseOrder(order_id=order.order_id, actor_id=by, actor_is_admin=admin), DispensingView
        )
        return view

    async def queue(
        self, pharmacy_id: str, by: str, *, admin: bool = False, page: Page | None = None
    ) -> list[str]:
        command = ListDispensingQueue(
            pharmacy_id=pharmacy_id, actor_id=by, actor_is_admin=admin, page=page or Page()
        )
        views: list[DispensingView] = await self.rpc.ask(command, list[DispensingView])
        return [v.order_id for v in views]

    def dispensed(self, order: OrderCreated) -> list[Envelope]:
        return [e for e in self.probe.of_type(OrderDispensed) if e.correlation_id == order.order_id]

    async def cancel(self, order: OrderCreated, reason: str = "cancelled by the customer") -> None:
        cancelled = OrderCancelled(
            order_id=order.order_id,
            prescription_id=order.prescription_id,
            patient_id=order.patient_id,
            reason=reason,
        )
        await self.probe.publish(cancelled, correlation_id=order.order_id)


@pytest_asyncio.fixture
async def counter(namespace: Namespace, probe: EventProbe, running: Start) -> AsyncIterator[Counter]:
    settings = namespace.settings(InventorySettings)
    service = await running(build(settings))
    async with rpc_client(settings) as rpc:
        mitte = await rpc.ask(
            CreatePharmacy(name="Mitte", address="1 Str", location=MITTE, founder_id="anna"), PharmacyView
        )
        wedding = await rpc.ask(
            CreatePharmacy(name="Wedding", address="2 Str", location=WEDDING, founder_id="bruno"),
            PharmacyView,
        )
        await rpc.ask(AddPharmacyStaff(pharmacy_id=mitte.id, user_id="carl", actor_id="root"), dict)
        drug = await rpc.ask(
            CreateMedication(
                name="Ibuprofen",
                strength="400 mg",
                form="tablet",
                price_cents=PRICE_CENTS,
                prescription_only=False,
            ),
            MedicationView,
        )
        for pharmacy_id, pharmacist in ((mitte.id, "anna"), (wedding.id, "bruno")):
            await rpc.ask(
                SetStock(
                    pharmacy_id=pharmacy_id, medication_id=drug.id, quantity=ON_THE_SHELF, actor_id=pharmacist
                ),
                dict,
            )
        yield Counter(service, probe, rpc, mitte.id, wedding.id, drug.id)


async def refusal(asked: Awaitable[object]) -> CommandRefused:
    with pytest.raises(CommandRefused) as refused:
        await asked
    return refused.value


def level(available: int, reserved: int, sold: int, returned: int) -> Document:
    return {"available": available, "reserved": reserved, "sold": sold, "returned": returned}


# --- dispensing ------------------------------------------------------------------------------------------


async def test_its_pharmacist_dispenses_a_paid_order_once_though_the_command_arrives_twice(
    counter: Counter,
) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)
    twice = DispenseOrder(order_id=order.order_id, actor_id="anna", request_id=f"dispense-{order.order_id}")

    # The same command twice on the order's partition, as a redelivery after a crash would bring it.
    first, second = await asyncio.gather(
        counter.rpc.ask(twice, DispensingView), counter.rpc.ask(twice, DispensingView)
    )
    await handled_everything(counter.service, counter.probe)

    assert first == second
    assert (first.order_id, first.pharmacy_id) == (order.order_id, counter.mitte)
    [announced] = counter.dispensed(order)
    line = ReservedLine(medication_id=counter.medication_id, quantity=3, unit_price_cents=PRICE_CENTS)
    assert OrderDispensed.model_validate(announced.payload) == OrderDispensed(
        order_id=order.order_id,
        pharmacy_id=counter.mitte,
        pharmacist_id="anna",
        lines=(line,),
        pharmacy_location=MITTE,
    )
    assert await counter.stock(counter.mitte) == level(7, 0, 3, 0)
    assert (await counter.pharmacy(counter.mitte))["holds"] == {}
    reservation = await counter.reservation(order.order_id, "DISPENSED")
    assert reservation["dispensed_by"] == "anna"
    assert abs(reservation["dispensed_at"] - announced.occurred_at) < timedelta(milliseconds=1)


async def test_a_colleague_dispensing_an_order_dispensed_already_is_told_it_was(counter: Counter) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)
    await counter.dispense(order, "anna")

    refused = await refusal(counter.dispense(order, "carl"))
    again = await counter.dispense(order, "anna")  # the one who did it asks again: the same answer
    await handled_everything(counter.service, counter.probe)

    assert (refused.code, refused.detail) == (
        "conflict",
        f"order {order.order_id} was dispensed already, by anna",
    )
    assert again.order_id == order.order_id
    assert len(counter.dispensed(order)) == 1
    assert await counter.stock(counter.mitte) == level(7, 0, 3, 0)
    assert (await counter.reservation(order.order_id, "DISPENSED"))["dispensed_by"] == "anna"


async def cut_short(counter: Counter, order: OrderCreated) -> OrderDispensed:
    """As a crash after the dispensing's first write leaves it: the reservation DISPENSED with its
    OrderDispensed published, the stock still held (the sale on the pharmacy never written)."""
    stores = store.stores(counter.service)
    pharmacy = await stores.pharmacies.get(counter.mitte)
    assert pharmacy is not None
    decided: list[Any] = []

    def dispensed(r: Reservation) -> list[Any]:
        decided.extend(r.dispense("anna", r.paid_at or r.created_at, pharmacy.location))
        return []

    await counter.service.change(stores.reservations, order.order_id, dispensed, cause=None)
    assert await counter.stock(counter.mitte) == level(7, 3, 0, 0)
    (event,) = decided
    assert isinstance(event, OrderDispensed)
    return event


async def test_a_dispense_cut_short_before_its_sale_is_sold_by_its_own_event(counter: Counter) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)
    event = await cut_short(counter, order)

    await counter.probe.publish(event, correlation_id=order.order_id)  # what the outbox publishes
    await handled_everything(counter.service, counter.probe)

    assert await counter.stock(counter.mitte) == level(7, 0, 3, 0)
    assert await counter.queue(counter.mitte, "anna") == []


async def test_a_dispense_cut_short_then_cancelled_counts_what_was_dispensed_as_returned(
    counter: Counter,
) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)
    event = await cut_short(counter, order)

    await counter.cancel(order)  # before the dispensing's own event is back
    await counter.reservation(order.order_id, "RETURNED")
    await counter.probe.publish(event, correlation_id=order.order_id)
    await handled_everything(counter.service, counter.probe)

    # Sold, then taken back as returned: nothing held, nothing back on sale, nothing sold twice.
    assert await counter.stock(counter.mitte) == level(7, 0, 0, 3)


async def test_a_pharmacist_of_another_pharmacy_cannot_dispense_and_an_admin_can(counter: Counter) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)

    refused = await refusal(counter.dispense(order, "bruno"))
    await handled_everything(counter.service, counter.probe)

    assert (refused.code, refused.detail) == (
        "forbidden",
        f"only the staff of pharmacy {counter.mitte} or an admin may dispense its orders",
    )
    assert counter.dispensed(order) == []
    assert await counter.stock(counter.mitte) == level(7, 3, 0, 0)
    await counter.reservation(order.order_id, "PAID")

    await counter.dispense(order, "root", admin=True)

    assert (await counter.reservation(order.order_id, "DISPENSED"))["dispensed_by"] == "root"
    assert await counter.stock(counter.mitte) == level(7, 0, 3, 0)


async def test_an_order_not_paid_for_cannot_be_dispensed(counter: Counter) -> None:
    order = await counter.reserved(MITTE)

    unpaid = await refusal(counter.dispense(order, "anna"))
    unknown = await refusal(
        counter.rpc.ask(DispenseOrder(order_id="no-such-order", actor_id="anna"), DispensingView)
    )
    await handled_everything(counter.service, counter.probe)

    assert (unpaid.code, unpaid.detail) == (
        "conflict",
        f"order {order.order_id} is not paid for yet (its reservation is RESERVED)",
    )
    assert unknown.code == "not_found"
    assert counter.dispensed(order) == []
    assert await counter.stock(counter.mitte) == level(7, 3, 0, 0)
    await counter.reservation(order.order_id, "RESERVED")


# --- the dispensing queue -------------------------------------------------------------------------------


async def test_the_queue_lists_that_pharmacys_paid_orders_oldest_payment_first_a_page_at_a_time(
    counter: Counter,
) -> None:
    # One unit each: Mitte has enough for all five.
    second = await counter.reserved(MITTE, quantity=1, verified_by="vera")
    first = await counter.reserved(MITTE, quantity=1)
    third = await counter.reserved(MITTE, quantity=1)
    unpaid = await counter.reserved(MITTE, quantity=1)
    done = await counter.reserved(MITTE, quantity=1)
    elsewhere = await counter.reserved(WEDDING, quantity=1)
    # Paid in another order than they were made: the queue goes by payment.
    await counter.paid(third, at=PAID_FROM + timedelta(minutes=3))
    await counter.paid(first, at=PAID_FROM + timedelta(minutes=1))
    await counter.paid(second, at=PAID_FROM + timedelta(minutes=2))
    await counter.paid(done, at=PAID_FROM)
    await counter.paid(elsewhere, at=PAID_FROM)
    await counter.dispense(done, "anna")

    whole = await counter.queue(counter.mitte, "anna")
    pages = [
        await counter.queue(counter.mitte, "carl", page=Page(limit=2, offset=0)),
        await counter.queue(counter.mitte, "carl", page=Page(limit=2, offset=2)),
    ]
    by_an_admin = await counter.queue(counter.mitte, "root", admin=True)
    wedding = await counter.queue(counter.wedding, "bruno")
    views: list[DispensingView] = await counter.rpc.ask(
        ListDispensingQueue(pharmacy_id=counter.mitte, actor_id="anna", page=Page(limit=1, offset=1)),
        list[DispensingView],
    )

    ids = [first.order_id, second.order_id, third.order_id]
    assert whole == ids
    assert unpaid.order_id not in whole
    assert done.order_id not in whole
    assert pages == [ids[:2], ids[2:]]
    assert by_an_admin == ids
    assert wedding == [elsewhere.order_id]
    line = ReservedLine(medication_id=counter.medication_id, quantity=1, unit_price_cents=PRICE_CENTS)
    # 199 service fee; the address is the pharmacy's own: the delivery base fee alone.
    assert views == [
        DispensingView(
            order_id=second.order_id,
            pharmacy_id=counter.mitte,
            lines=(line,),
            total_cents=PRICE_CENTS + 199 + 299,
            paid_at=PAID_FROM + timedelta(minutes=2),
            verified_by="vera",
        )
    ]


async def test_only_its_staff_and_admins_see_a_pharmacys_queue(counter: Counter) -> None:
    refused = await refusal(counter.queue(counter.mitte, "bruno"))
    unknown = await refusal(counter.queue("no-such-pharmacy", "anna"))

    assert (refused.code, refused.detail) == (
        "forbidden",
        f"only the staff of pharmacy {counter.mitte} or an admin may see its dispensing queue",
    )
    assert unknown.code == "not_found"


async def test_the_queue_is_read_from_its_index(counter: Counter) -> None:
    if "ferretdbVersion" not in await counter.service.db.client.admin.command("buildInfo"):
        pytest.skip("query plans are FerretDB's; MongoDB plans this with the same index on its own")
    for _ in range(3):
        await counter.paid(await counter.reserved(MITTE))

    plan: Document = await counter.service.db.command(
        "explain",
        {
            "find": "reservations",
            "filter": store.dispensing_queue_filter(counter.mitte),
            "sort": dict(store.DISPENSING_ORDER),
            "skip": Int64(1),
            "limit": Int64(2),
        },
    )

    steps = " ".join(plan["queryPlanner"]["Plan"])
    assert plan["filterPushdown"] is True
    assert plan["sortPushdown"] is True, steps  # a page read from the index, not every reservation
    assert plan["limitPushdown"] is True, steps
    assert "USING INDEX" in steps, steps
    assert "SCAN" not in steps, steps


# --- an order's end after payment ---------------------------------------------------------------------


async def test_a_paid_order_cancelled_before_dispensing_puts_its_stock_back_on_the_shelf(
    counter: Counter,
) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)

    await counter.cancel(order)

    await counter.reservation(order.order_id, "RELEASED")
    assert await counter.stock(counter.mitte) == level(ON_THE_SHELF, 0, 0, 0)
    assert (await counter.pharmacy(counter.mitte))["holds"] == {}
    assert await counter.queue(counter.mitte, "anna") == []


async def test_a_dispensed_order_cancelled_before_pickup_is_returned_never_back_on_sale(
    counter: Counter,
) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)
    await counter.dispense(order, "anna")

    await counter.cancel(order, "the patient no longer needs it")

    reservation = await counter.reservation(order.order_id, "RETURNED")
    assert reservation["return_reason"] == "the patient no longer needs it"
    assert await counter.stock(counter.mitte) == level(7, 0, 0, 3)
    assert (await counter.pharmacy(counter.mitte))["returns"] == [order.order_id]


async def test_a_delivery_brought_back_is_returned_with_its_reason_once(counter: Counter) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)
    await counter.dispense(order, "anna")
    returned = DeliveryReturned(
        delivery_id=order.order_id, order_id=order.order_id, pharmacy_id=counter.mitte, reason="NO_ONE_HOME"
    )

    sent = await counter.probe.publish(returned, correlation_id=order.order_id)
    await counter.probe.publish(returned, correlation_id=order.order_id, envelope=sent)
    await counter.cancel(order, "returned to the pharmacy")  # the order's end, after it came back
    await handled_everything(counter.service, counter.probe)

    reservation = await counter.reservation(order.order_id, "RETURNED")
    assert reservation["return_reason"] == "NO_ONE_HOME"
    assert reservation["processed_event_ids"].count(str(sent.event_id)) == 1
    assert await counter.stock(counter.mitte) == level(7, 0, 0, 3)
    assert (await counter.pharmacy(counter.mitte))["returns"] == [order.order_id]


async def test_a_delivery_brought_back_for_an_order_never_dispensed_changes_nothing(counter: Counter) -> None:
    order = await counter.reserved(MITTE)
    await counter.paid(order)

    returned = DeliveryReturned(
        delivery_id=order.order_id, order_id=order.order_id, pharmacy_id=counter.mitte, reason="NO_ONE_HOME"
    )
    await counter.probe.publish(returned, correlation_id=order.order_id)
    await handled_everything(counter.service, counter.probe)

    await counter.reservation(order.order_id, "PAID")
    assert await counter.stock(counter.mitte) == level(7, 3, 0, 0)


async def sold_before_authorisations(counter: Counter, order: OrderCreated) -> None:
    """As inventory stored a paid order before authorisations: stock sold at once, reservation SOLD."""
    await counter.reservation(order.order_id, "RESERVED")
    stores = store.stores(counter.service)

    def sold(p: Pharmacy) -> list[Any]:
        p.sell(order.order_id)
        return []

    def marked(r: Reservation) -> list[Any]:
        r.state = "SOLD"
        return []

    await counter.service.change(stores.pharmacies, counter.mitte, sold, cause=None)
    await counter.service.change(stores.reservations, order.order_id, marked, cause=None)


async def test_a_sale_stored_before_authorisations_is_dispensed_without_selling_again(
    counter: Counter,
) -> None:
    # An order confirmed before this change (charged in full, its stock sold at once) goes on to its
    # courier: dispensing it sells nothing twice.
    order = await counter.reserved(MITTE)
    await sold_before_authorisations(counter, order)

    dispensed = await counter.dispense(order, "anna")

    assert dispensed.order_id == order.order_id
    await counter.reservation(order.order_id, "DISPENSED")
    assert await counter.stock(counter.mitte) == level(7, 0, 3, 0)


async def test_a_sale_stored_before_authorisations_cancelled_goes_back_on_the_shelf_as_before(
    counter: Counter,
) -> None:
    order = await counter.reserved(MITTE)
    await sold_before_authorisations(counter, order)
    assert await counter.stock(counter.mitte) == level(7, 0, 3, 0)

    await counter.cancel(order)

    reservation = await counter.reservation(order.order_id, "RETURNED")
    assert reservation["return_reason"] is None
    assert await counter.stock(counter.mitte) == level(ON_THE_SHELF, 0, 0, 0)
