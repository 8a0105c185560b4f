"""delivery_service on a real broker and store: assigning couriers, the moves at the door, cancels.

Events are published as order_service would; the couriers' commands go through the broker as the
gateway sends them (writes on the partition of the aggregate they change).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from bson import Int64

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import EventProbe, Namespace, eventually, handled_everything, rpc_client

from contracts.base import Command, Envelope, Event
from contracts.commands import (
    CompleteDelivery,
    CourierView,
    DeliveryPinView,
    DeliveryView,
    FailDelivery,
    GetDelivery,
    GetDeliveryPin,
    ListDeliveries,
    PickUpDelivery,
    UpdateCourier,
)
from contracts.events import (
    CourierFree,
    DeliveryAssigned,
    DeliveryAttemptFailed,
    DeliveryCompleted,
    DeliveryPickedUp,
    DeliveryReturned,
    DeliveryUnassigned,
    Location,
    OrderCancelled,
    OrderReadyForPickup,
)
from delivery_service import domain
from delivery_service.app import Settings, build
from delivery_service.domain import Courier, PinKey
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused
from service_runtime.messaging import RpcClient
from service_runtime.service import Service, wrap
from service_runtime.store import Repository

pytestmark = pytest.mark.integration

Document = dict[str, Any]
Start = Callable[[Service], Awaitable[Service]]
T = TypeVar("T")

PHARMACY = Location(latitude=52.3700, longitude=4.8900)
PATIENT = Location(latitude=52.3800, longitude=4.9000)


def north_of_pharmacy(km: float) -> Location:
    return Location(latitude=PHARMACY.latitude + km / 111.195, longitude=PHARMACY.longitude)


@dataclass
class Dispatch:
    """A running delivery_service, the probe that watches its namespace, and a gateway's RPC client."""

    service: Service
    probe: EventProbe
    rpc: RpcClient
    pins: PinKey

    async def ready(self, **changes: Any) -> OrderReadyForPickup:
        values: dict[str, Any] = {
            "order_id": str(uuid4()),
            "patient_id": f"patient-{uuid4().hex[:8]}",
            "pharmacy_id": "pharmacy-1",
            "pharmacy_location": PHARMACY,
            "delivery_location": PATIENT,
            "total_cents": 2_500,
            "controlled": False,
        }
        event = OrderReadyForPickup.model_validate(values | changes)
        await self.publish(event, event.order_id)
        return event

    async def publish(self, event: Event, order_id: str, envelope: Envelope | None = None) -> Envelope:
        return await self.probe.publish(event, correlation_id=order_id, envelope=envelope)

    async def courier(self, *, at: Location = PHARMACY, available: bool = True, name: str = "") -> str:
        courier_id = f"courier-{name}{uuid4().hex[:8]}"
        await self.update(courier_id, at=at, available=available)
        return courier_id

    async def update(
        self, courier_id: str, *, at: Location = PHARMACY, available: bool = True
    ) -> CourierView:
        view: CourierView = await self.rpc.ask(
            UpdateCourier(courier_id=courier_id, available=available, location=at), CourierView
        )
        return view

    async def ask(self, command: Command, answer: type[T]) -> T:
        found: T = await self.rpc.ask(command, answer)
        return found

    async def refused(self, command: Command) -> CommandRefused:
        with pytest.raises(CommandRefused) as refused:
            await self.rpc.ask(command, DeliveryView)
        return refused.value

    async def delivery(self, order_id: str, status: str) -> Document:
        async def read() -> Document | None:
            return await self.service.db["deliveries"].find_one({"_id": order_id})

        return await eventually(read, lambda d: d["status"] == status, what=f"delivery {order_id} {status}")

    async def courier_doc(self, courier_id: str) -> Document:
        found = await self.service.db["couriers"].find_one({"_id": courier_id})
        assert found is not None
        return found

    async def settled(self) -> None:
        await handled_everything(self.service, self.probe)

    def count(self, kind: type[Event], order_id: str) -> int:
        return sum(1 for e in self.probe.seen if e.type == kind.TYPE and e.correlation_id == order_id)

    async def assigned(self, order_id: str) -> DeliveryAssigned:
        envelope = await self.probe.wait_for(DeliveryAssigned, correlation_id=order_id)
        return DeliveryAssigned.model_validate(envelope.payload)

    async def out_for_delivery(self, **changes: Any) -> tuple[OrderReadyForPickup, str]:
        """A delivery picked up by a courier of its own."""
        courier_id = await self.courier()
        event = await self.ready(**changes)
        assert (await self.assigned(event.order_id)).courier_id == courier_id
        await self.ask(PickUpDelivery(delivery_id=event.order_id, courier_id=courier_id), DeliveryView)
        return event, courier_id


@pytest_asyncio.fixture
async def dispatch(namespace: Namespace, probe: EventProbe, running: Start) -> AsyncIterator[Dispatch]:
    settings = namespace.settings(Settings)
    service = await running(build(settings))
    async with rpc_client(settings) as rpc:
        yield Dispatch(service, probe, rpc, PinKey(settings.delivery_pin_key.get_secret_value().encode()))


# --- assignment -----------------------------------------------------------------------------------


async def test_a_ready_order_goes_to_the_nearest_free_courier(dispatch: Dispatch) -> None:
    far = await dispatch.courier(at=north_of_pharmacy(6))
    near = await dispatch.courier(at=north_of_pharmacy(2))
    beyond = await dispatch.courier(at=north_of_pharmacy(20))
    busy = await dispatch.courier(at=PHARMACY)
    first = await dispatch.ready()
    assert (await dispatch.assigned(first.order_id)).courier_id == busy  # nearest of all, at the door

    event = await dispatch.ready(controlled=True)
    assigned = await dispatch.assigned(event.order_id)

    assert (assigned.courier_id, assigned.proof) == (near, "PIN")
    delivery = await dispatch.delivery(event.order_id, "ASSIGNED")
    assert delivery["courier_id"] == near
    assert (await dispatch.courier_doc(near))["delivery_id"] == event.order_id
    for idle in (far, beyond):
        assert (await dispatch.courier_doc(idle))["delivery_id"] is None
    view = await dispatch.ask(GetDelivery(delivery_id=event.order_id, courier_id=near), DeliveryView)
    assert (view.status, view.courier_id, view.eta) == ("ASSIGNED", near, assigned.eta)
    assert "pin" not in view.model_dump()


async def test_with_nobody_free_a_delivery_waits_until_a_courier_comes_on_duty(dispatch: Dispatch) -> None:
    off_duty = await dispatch.courier(available=False)
    event = await dispatch.ready()
    await dispatch.settled()
    assert (await dispatch.delivery(event.order_id, "WAITING_FOR_COURIER"))["courier_id"] is None

    back = await dispatch.update(off_duty, at=north_of_pharmacy(1))

    assert back.delivery_id == event.order_id  # the answer says what they were given
    assert (await dispatch.assigned(event.order_id)).courier_id == off_duty
    await dispatch.delivery(event.order_id, "ASSIGNED")


async def test_couriers_racing_deliveries_each_carry_one_and_the_rest_wait(dispatch: Dispatch) -> None:
    couriers = [await dispatch.courier(at=north_of_pharmacy(k)) for k in range(3)]
    # Published at once: different orders land on different partitions and are handled side by side.
    events = await asyncio.gather(*(dispatch.ready() for _ in range(8)))
    await dispatch.settled()

    deliveries = [await dispatch.service.db["deliveries"].find_one({"_id": e.order_id}) for e in events]
    assigned = [d for d in deliveries if d is not None and d["status"] == "ASSIGNED"]
    waiting = [d for d in deliveries if d is not None and d["status"] == "WAITING_FOR_COURIER"]
    assert (len(assigned), len(waiting)) == (3, 5)
    assert sorted(d["courier_id"] for d in assigned) == sorted(couriers)
    for courier_id in couriers:
        held = [d["_id"] for d in assigned if d["courier_id"] == courier_id]
        assert [(await dispatch.courier_doc(courier_id))["delivery_id"]] == held
    assert sum(dispatch.count(DeliveryAssigned, e.order_id) for e in events) == 3

    # A courier who hands theirs over takes the delivery that has waited longest.
    done = assigned[0]
    await dispatch.ask(PickUpDelivery(delivery_id=done["_id"], courier_id=done["courier_id"]), DeliveryView)
    await dispatch.ask(
        CompleteDelivery(delivery_id=done["_id"], courier_id=done["courier_id"], recipient_name="Pat"),
        DeliveryView,
    )
    oldest = min(waiting, key=lambda d: (d["ready_at"], d["_id"]))
    assert (await dispatch.assigned(oldest["_id"])).courier_id == done["courier_id"]


async def test_two_replicas_racing_for_couriers_never_give_one_two_deliveries(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    def replica(index: int) -> Settings:
        return namespace.settings(Settings, replica_index=index, replica_count=2, standby_after_seconds=60)

    # Each replica consumes half the partitions, with its own locks and its own store connections:
    # only the version-conditional saves stand between two claims of one courier.
    first = await running(build(replica(0)))
    await running(build(replica(1)))
    async with rpc_client(replica(0)) as rpc:
        couriers = [f"courier-{k}-{uuid4().hex[:6]}" for k in range(4)]
        for k, courier_id in enumerate(couriers):
            update = UpdateCourier(courier_id=courier_id, available=True, location=north_of_pharmacy(k))
            await rpc.ask(update, CourierView)
        events = [
            OrderReadyForPickup(
                order_id=str(uuid4()),
                patient_id="patient-1",
                pharmacy_id="pharmacy-1",
                pharmacy_location=PHARMACY,
                delivery_location=PATIENT,
                total_cents=2_500,
                controlled=False,
            )
            for _ in range(16)
        ]
        await asyncio.gather(*(probe.publish(e, correlation_id=e.order_id) for e in events))
        deliveries = first.db["deliveries"]

        async def statuses() -> list[str]:
            return [
                d["status"]
                async for d in deliveries.find({"order_id": {"$in": [e.order_id for e in events]}})
            ]

        await eventually(
            statuses, lambda found: len(found) == 16 and found.count("ASSIGNED") >= 4, what="4 assigned"
        )
        await asyncio.sleep(1.0)  # anything still racing lands now
        await probe.caught_up()

    found = await statuses()
    assert (found.count("ASSIGNED"), found.count("WAITING_FOR_COURIER")) == (4, 12)
    carried = [d async for d in deliveries.find({"status": "ASSIGNED"})]
    assert sorted(d["courier_id"] for d in carried) == sorted(couriers)
    for d in carried:
        courier = await first.db["couriers"].find_one({"_id": d["courier_id"]})
        assert courier is not None
        assert courier["delivery_id"] == d["_id"]
    assert len(probe.of_type(DeliveryAssigned)) == 4


async def test_a_delivery_and_a_courier_coming_free_at_once_find_each_other(dispatch: Dispatch) -> None:
    for _ in range(5):
        courier_id = await dispatch.courier(available=False)
        event, _ = await asyncio.gather(dispatch.ready(), dispatch.update(courier_id, available=True))

        assert (await dispatch.assigned(event.order_id)).courier_id == courier_id
        await dispatch.settled()
        assert dispatch.count(DeliveryAssigned, event.order_id) == 1


async def test_a_redelivered_ready_event_makes_one_delivery(dispatch: Dispatch) -> None:
    await dispatch.courier()
    event = OrderReadyForPickup(
        order_id=str(uuid4()),
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        pharmacy_location=PHARMACY,
        delivery_location=PATIENT,
        total_cents=2_500,
        controlled=False,
    )
    envelope = await dispatch.publish(event, event.order_id)
    await dispatch.publish(event, event.order_id, envelope)  # the same message, again
    await dispatch.publish(event, event.order_id)  # and the same fact under a new id
    await dispatch.settled()

    assert await dispatch.service.db["deliveries"].count_documents({"order_id": event.order_id}) == 1
    assert dispatch.count(DeliveryAssigned, event.order_id) == 1


async def test_a_claim_left_by_a_crash_is_finished_and_a_stale_one_released(dispatch: Dispatch) -> None:
    couriers = dispatch.service.db["couriers"]
    # A crash between the two writes: the courier is claimed, the delivery still waits.
    claimed = await dispatch.courier(available=False)
    event = await dispatch.ready()
    await dispatch.delivery(event.order_id, "WAITING_FOR_COURIER")
    await couriers.update_one(
        {"_id": claimed}, {"$set": {"delivery_id": event.order_id, "idle": False}, "$inc": {"version": 1}}
    )

    await dispatch.publish(event, event.order_id)  # what the crashed attempt was handling, again

    assert (await dispatch.assigned(event.order_id)).courier_id == claimed
    # A claim whose delivery went to someone else: the courier's next update drops it, and they take
    # the delivery waiting.
    stale = await dispatch.courier(available=False)
    await couriers.update_one(
        {"_id": stale}, {"$set": {"delivery_id": event.order_id, "idle": False}, "$inc": {"version": 1}}
    )
    last = await dispatch.ready()
    await dispatch.delivery(last.order_id, "WAITING_FOR_COURIER")

    freed = await dispatch.update(stale)

    assert freed.delivery_id == last.order_id
    assert (await dispatch.assigned(last.order_id)).courier_id == stale
    assert (await dispatch.courier_doc(claimed))["delivery_id"] == event.order_id
    await dispatch.settled()
    assert dispatch.count(DeliveryAssigned, event.order_id) == 1


async def test_a_hand_over_whose_command_lost_its_follow_up_frees_the_courier_on_its_event(
    dispatch: Dispatch,
) -> None:
    # Seen in the fault suite: the broker went away while CompleteDelivery was carried out. The
    # hand-over was stored, the handler (and the courier's release after it) was cut off, and the
    # redelivered command, past its caller's wait, was dropped. Here: the stored state that leaves.
    event, courier_id = await dispatch.out_for_delivery()
    await dispatch.settled()
    deliveries = dispatch.service.db["deliveries"]
    await deliveries.update_one(
        {"_id": event.order_id}, {"$set": {"status": "DELIVERED"}, "$inc": {"version": 1}}
    )
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] == event.order_id
    waiting = await dispatch.ready()
    await dispatch.delivery(waiting.order_id, "WAITING_FOR_COURIER")

    # The DeliveryCompleted its outbox published: it reaches delivery_service too.
    completed = DeliveryCompleted(
        delivery_id=event.order_id, order_id=event.order_id, courier_id=courier_id, proof="NAME"
    )
    await dispatch.publish(completed, event.order_id)

    # Freed, and so the next delivery waiting within reach is theirs.
    assert (await dispatch.assigned(waiting.order_id)).courier_id == courier_id
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] == waiting.order_id


async def test_a_courier_update_whose_follow_up_was_lost_is_settled_by_its_courier_free_event(
    dispatch: Dispatch,
) -> None:
    # The process died between UpdateCourier's write and its follow-up: the courier stands free in the
    # store, nobody looked for a delivery for them, and the redelivered command, past its caller's
    # wait, is dropped. Here: the write as the crashed handler made it, CourierFree in its outbox.
    courier_id = await dispatch.courier(available=False)
    event = await dispatch.ready()
    await dispatch.delivery(event.order_id, "WAITING_FOR_COURIER")
    await dispatch.settled()
    couriers = Repository(dispatch.service.db["couriers"], Courier, dispatch.service.cipher)
    stored = await couriers.get(courier_id)
    assert stored is not None
    now = utc_now()
    came_free = domain.update_courier(stored, True, north_of_pharmacy(1), domain.Rules(), now)
    await couriers.save(stored, wrap(came_free, None, courier_id, at=now))

    # The outbox sweep publishes it; it comes back to delivery_service and settles the courier.
    assert (await dispatch.assigned(event.order_id)).courier_id == courier_id
    free = await dispatch.probe.wait_for(CourierFree, correlation_id=courier_id)
    await dispatch.delivery(event.order_id, "ASSIGNED")
    await dispatch.publish(CourierFree.model_validate(free.payload), courier_id, free)  # delivered again
    await dispatch.settled()

    assert dispatch.count(DeliveryAssigned, event.order_id) == 1
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] == event.order_id


async def test_a_free_courier_says_so_once_per_move_that_matters(dispatch: Dispatch) -> None:
    courier_id = await dispatch.courier(at=north_of_pharmacy(30))  # beyond reach of everything
    for km in (30.1, 30.2, 30.3):  # pings of a courier who waits where they are
        await dispatch.update(courier_id, at=north_of_pharmacy(km))
    await dispatch.update(courier_id, at=north_of_pharmacy(32))
    await dispatch.settled()

    said = [
        e.payload["location"] for e in dispatch.probe.of_type(CourierFree) if e.correlation_id == courier_id
    ]
    assert said == [
        north_of_pharmacy(30).model_dump(mode="json"),
        north_of_pharmacy(32).model_dump(mode="json"),
    ]


# --- going off duty -----------------------------------------------------------------------------------


async def test_going_off_duty_before_collecting_hands_the_delivery_to_the_nearest_other_courier(
    dispatch: Dispatch,
) -> None:
    first = await dispatch.courier(at=PHARMACY)
    event = await dispatch.ready()
    assert (await dispatch.assigned(event.order_id)).courier_id == first
    far = await dispatch.courier(at=north_of_pharmacy(8))
    near = await dispatch.courier(at=north_of_pharmacy(3))

    off = await dispatch.update(first, available=False)

    assert (off.available, off.delivery_id) == (False, None)
    unassigned = DeliveryUnassigned.model_validate(
        (await dispatch.probe.wait_for(DeliveryUnassigned, correlation_id=event.order_id)).payload
    )
    assert unassigned.courier_id == first

    async def read() -> Document | None:
        return await dispatch.service.db["deliveries"].find_one({"_id": event.order_id})

    again = await eventually(read, lambda d: d["courier_id"] == near, what="assigned to the next nearest")
    await dispatch.settled()
    assert (again["status"], again["handed_back_by"]) == ("ASSIGNED", [first])
    view = await dispatch.ask(GetDelivery(delivery_id=event.order_id, courier_id=near), DeliveryView)
    assert (view.attempts, view.eta is not None) == ((), True)
    assert dispatch.count(DeliveryAssigned, event.order_id) == 2
    assert dispatch.count(DeliveryUnassigned, event.order_id) == 1
    assert (await dispatch.courier_doc(near))["delivery_id"] == event.order_id
    assert (await dispatch.courier_doc(far))["delivery_id"] is None
    # Back on duty, the first courier is not given it again, nor may they collect it.
    back = await dispatch.update(first)
    assert back.delivery_id is None
    refused = await dispatch.refused(PickUpDelivery(delivery_id=event.order_id, courier_id=first))
    assert refused.code == "not_found"
    picked = await dispatch.ask(PickUpDelivery(delivery_id=event.order_id, courier_id=near), DeliveryView)
    assert picked.status == "OUT_FOR_DELIVERY"


async def test_going_off_duty_gives_back_what_they_hold_and_takes_nothing_else_that_waits(
    dispatch: Dispatch,
) -> None:
    # Another delivery waits as the courier goes off duty: the release of their claim on the one they
    # give back must not find them still on duty and hand them the other.
    first = await dispatch.courier(at=PHARMACY)
    held = await dispatch.ready()
    await dispatch.assigned(held.order_id)
    waiting = await dispatch.ready()
    await dispatch.delivery(waiting.order_id, "WAITING_FOR_COURIER")

    off = await dispatch.update(first, available=False)
    await dispatch.settled()

    assert (off.available, off.delivery_id) == (False, None)
    assert (await dispatch.courier_doc(first))["delivery_id"] is None
    for order_id in (held.order_id, waiting.order_id):
        delivery = await dispatch.delivery(order_id, "WAITING_FOR_COURIER")
        assert delivery["courier_id"] is None
    assert dispatch.count(DeliveryAssigned, waiting.order_id) == 0


async def test_going_off_duty_with_a_delivery_in_hand_is_refused_and_moving_is_not(
    dispatch: Dispatch,
) -> None:
    event, courier_id = await dispatch.out_for_delivery()

    with pytest.raises(CommandRefused) as refused:
        await dispatch.update(courier_id, available=False)
    moved = await dispatch.update(courier_id, at=north_of_pharmacy(1))
    await dispatch.settled()

    assert refused.value.code == "conflict"
    assert "deliver it or record a failed attempt" in str(refused.value)
    assert (moved.available, moved.delivery_id, moved.location) == (
        True,
        event.order_id,
        north_of_pharmacy(1),
    )
    delivery = await dispatch.delivery(event.order_id, "OUT_FOR_DELIVERY")
    assert (delivery["courier_id"], delivery["handed_back_by"]) == (courier_id, [])
    assert dispatch.count(DeliveryUnassigned, event.order_id) == 0


async def test_a_hand_back_whose_command_lost_its_follow_up_is_finished_on_its_event(
    dispatch: Dispatch,
) -> None:
    # The process died after both writes of a hand-back, before its dispatch: the courier is off duty,
    # their claim still names the delivery, which waits again.
    first = await dispatch.courier(at=PHARMACY)
    event = await dispatch.ready()
    await dispatch.assigned(event.order_id)
    other = await dispatch.courier(at=north_of_pharmacy(2))
    await dispatch.settled()  # their own CourierFree handled: nothing waits for them yet
    await dispatch.service.db["couriers"].update_one(
        {"_id": first}, {"$set": {"available": False}, "$inc": {"version": 1}}
    )
    deliveries = dispatch.service.db["deliveries"]
    await deliveries.update_one(
        {"_id": event.order_id},
        {
            "$set": {"status": "WAITING_FOR_COURIER", "courier_id": None, "handed_back_by": [first]},
            "$inc": {"version": 1},
        },
    )

    # The DeliveryUnassigned its outbox published.
    gone = DeliveryUnassigned(
        delivery_id=event.order_id, order_id=event.order_id, courier_id=first, reason="off duty"
    )
    await dispatch.publish(gone, event.order_id)

    async def read() -> Document | None:
        return await deliveries.find_one({"_id": event.order_id})

    await eventually(read, lambda d: d["courier_id"] == other, what="given to the other courier")
    await dispatch.settled()
    assert (await dispatch.courier_doc(first))["delivery_id"] is None
    assert (await dispatch.courier_doc(other))["delivery_id"] == event.order_id


# --- at the door ------------------------------------------------------------------------------------


async def test_a_failed_attempt_sent_again_with_its_request_id_is_counted_once(dispatch: Dispatch) -> None:
    event, courier_id = await dispatch.out_for_delivery()
    fail = FailDelivery(
        delivery_id=event.order_id, courier_id=courier_id, reason="NO_ONE_HOME", request_id=uuid4().hex
    )

    first = await dispatch.ask(fail, DeliveryView)
    again = await dispatch.ask(fail, DeliveryView)  # its answer was lost: the client sends it again
    await dispatch.settled()

    assert (first.status, len(first.attempts)) == ("ATTEMPT_FAILED", 1)
    assert (again.status, len(again.attempts)) == ("ATTEMPT_FAILED", 1)
    assert dispatch.count(DeliveryAttemptFailed, event.order_id) == 1


async def test_a_redelivered_pickup_publishes_delivery_picked_up_once(dispatch: Dispatch) -> None:
    courier_id = await dispatch.courier()
    event = await dispatch.ready()
    await dispatch.assigned(event.order_id)
    pick_up = PickUpDelivery(delivery_id=event.order_id, courier_id=courier_id, request_id=uuid4().hex)
    other = await dispatch.courier(available=False)

    not_theirs = await dispatch.refused(PickUpDelivery(delivery_id=event.order_id, courier_id=other))
    first = await dispatch.ask(pick_up, DeliveryView)
    again = await dispatch.ask(pick_up, DeliveryView)  # delivered again: the same request
    twice = await dispatch.refused(pick_up.model_copy(update={"request_id": uuid4().hex}))
    await dispatch.settled()

    assert not_theirs.code == "not_found"
    assert first.status == again.status == "OUT_FOR_DELIVERY"
    assert twice.code == "conflict"
    assert dispatch.count(DeliveryPickedUp, event.order_id) == 1
    picked = DeliveryPickedUp.model_validate(
        (await dispatch.probe.wait_for(DeliveryPickedUp, correlation_id=event.order_id)).payload
    )
    assert (picked.courier_id, picked.eta) == (courier_id, first.eta)


async def test_the_right_pin_delivers_and_a_wrong_one_is_refused_and_counted(dispatch: Dispatch) -> None:
    event, courier_id = await dispatch.out_for_delivery(total_cents=25_000)
    pin = dispatch.pins.pin(event.order_id)
    wrong = f"{(int(pin) + 1) % 10_000:04d}"

    on_a_name = await dispatch.refused(
        CompleteDelivery(delivery_id=event.order_id, courier_id=courier_id, recipient_name="Pat")
    )
    refused = await dispatch.refused(
        CompleteDelivery(delivery_id=event.order_id, courier_id=courier_id, pin=wrong)
    )
    counted = await dispatch.ask(GetDelivery(delivery_id=event.order_id), DeliveryView)
    delivered = await dispatch.ask(
        CompleteDelivery(delivery_id=event.order_id, courier_id=courier_id, pin=pin, recipient_name="Pat"),
        DeliveryView,
    )
    await dispatch.settled()

    assert (on_a_name.code, on_a_name.field) == ("invalid", "pin")
    assert (refused.code, refused.field) == ("invalid", "pin")
    assert (counted.status, counted.wrong_pins, counted.proof) == ("OUT_FOR_DELIVERY", 1, "PIN")
    # Handed over: the answer to its courier no longer says to whom (an admin's view does, below).
    assert (delivered.status, delivered.recipient_name, delivered.wrong_pins) == ("DELIVERED", None, 1)
    whole = await dispatch.ask(GetDelivery(delivery_id=event.order_id), DeliveryView)
    assert whole.recipient_name == "Pat"
    completed = DeliveryCompleted.model_validate(
        (await dispatch.probe.wait_for(DeliveryCompleted, correlation_id=event.order_id)).payload
    )
    assert (completed.proof, completed.courier_id) == ("PIN", courier_id)
    assert dispatch.count(DeliveryCompleted, event.order_id) == 1
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] is None  # free again
    stored_delivery = await dispatch.service.db["deliveries"].find_one({"_id": event.order_id})
    assert stored_delivery is not None
    assert pin not in {str(value) for value in stored_delivery.values()}


async def test_the_pin_is_told_to_the_orders_patient_only(dispatch: Dispatch) -> None:
    controlled = await dispatch.ready(controlled=True)
    named = await dispatch.ready()
    await dispatch.delivery(named.order_id, "WAITING_FOR_COURIER")

    mine = await dispatch.ask(
        GetDeliveryPin(order_id=controlled.order_id, patient_id=controlled.patient_id), DeliveryPinView
    )
    no_pin = await dispatch.ask(
        GetDeliveryPin(order_id=named.order_id, patient_id=named.patient_id), DeliveryPinView
    )
    with pytest.raises(CommandRefused) as someone_else:
        await dispatch.rpc.ask(
            GetDeliveryPin(order_id=controlled.order_id, patient_id="patient-other"), DeliveryPinView
        )

    assert mine.pin == dispatch.pins.pin(controlled.order_id)
    assert no_pin.pin is None
    assert someone_else.value.code == "not_found"


async def test_two_failed_attempts_return_the_order_once(dispatch: Dispatch) -> None:
    event, courier_id = await dispatch.out_for_delivery()
    fail = FailDelivery(
        delivery_id=event.order_id, courier_id=courier_id, reason="NO_ONE_HOME", request_id=uuid4().hex
    )

    first = await dispatch.ask(fail, DeliveryView)
    assert (first.status, len(first.attempts)) == ("ATTEMPT_FAILED", 1)
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] == event.order_id  # still theirs
    last = FailDelivery(
        delivery_id=event.order_id, courier_id=courier_id, reason="REFUSED", request_id=uuid4().hex
    )
    returned = await dispatch.ask(last, DeliveryView)
    await dispatch.ask(last, DeliveryView)  # delivered again
    await dispatch.settled()

    assert (returned.status, [a.reason for a in returned.attempts]) == (
        "RETURNED",
        ["NO_ONE_HOME", "REFUSED"],
    )
    assert dispatch.count(DeliveryAttemptFailed, event.order_id) == 2
    assert dispatch.count(DeliveryReturned, event.order_id) == 1
    back = DeliveryReturned.model_validate(
        (await dispatch.probe.wait_for(DeliveryReturned, correlation_id=event.order_id)).payload
    )
    assert back.pharmacy_id == "pharmacy-1"
    assert "NO_ONE_HOME" in back.reason
    assert "REFUSED" in back.reason
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] is None


# --- cancels ------------------------------------------------------------------------------------------


def cancelled(order: OrderReadyForPickup) -> OrderCancelled:
    return OrderCancelled(
        order_id=order.order_id,
        prescription_id="prescription-1",
        patient_id=order.patient_id,
        reason="cancelled by the customer",
    )


async def test_a_cancel_before_pickup_frees_the_courier_for_the_next_delivery(dispatch: Dispatch) -> None:
    courier_id = await dispatch.courier()
    event = await dispatch.ready()
    await dispatch.assigned(event.order_id)
    next_one = await dispatch.ready()
    await dispatch.delivery(next_one.order_id, "WAITING_FOR_COURIER")

    await dispatch.publish(cancelled(event), event.order_id)

    await dispatch.delivery(event.order_id, "CANCELLED")
    assert (await dispatch.assigned(next_one.order_id)).courier_id == courier_id
    refused = await dispatch.refused(PickUpDelivery(delivery_id=event.order_id, courier_id=courier_id))
    assert refused.code == "conflict"


async def test_a_cancel_after_pickup_brings_the_order_back(dispatch: Dispatch) -> None:
    event, courier_id = await dispatch.out_for_delivery()

    await dispatch.publish(cancelled(event), event.order_id)

    returned = DeliveryReturned.model_validate(
        (await dispatch.probe.wait_for(DeliveryReturned, correlation_id=event.order_id)).payload
    )
    assert returned.reason == "order cancelled: cancelled by the customer"
    await dispatch.delivery(event.order_id, "RETURNED")
    await dispatch.settled()
    assert (await dispatch.courier_doc(courier_id))["delivery_id"] is None


async def test_a_cancel_before_the_order_is_ready_leaves_a_tombstone(dispatch: Dispatch) -> None:
    await dispatch.courier()
    order_id = str(uuid4())
    early = OrderReadyForPickup(
        order_id=order_id,
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        pharmacy_location=PHARMACY,
        delivery_location=PATIENT,
        total_cents=2_500,
        controlled=False,
    )

    await dispatch.publish(cancelled(early), order_id)
    await dispatch.delivery(order_id, "CANCELLED")
    await dispatch.publish(early, order_id)  # late
    await dispatch.settled()

    assert dispatch.count(DeliveryAssigned, order_id) == 0
    stone = await dispatch.service.db["deliveries"].find_one({"_id": order_id})
    assert stone is not None
    assert (stone["listed"], stone["status"], stone["cancel_reason"]) == (
        False,
        "CANCELLED",
        "cancelled by the customer",
    )
    listed = await dispatch.ask(ListDeliveries(courier_id=None), list[DeliveryView])
    assert order_id not in {d.id for d in listed}
    missing = await dispatch.refused(GetDelivery(delivery_id=order_id))
    assert missing.code == "not_found"


# --- reads and the operator's port --------------------------------------------------------------------


async def test_a_courier_lists_their_own_deliveries_newest_first(dispatch: Dispatch) -> None:
    courier_id = await dispatch.courier()
    first = await dispatch.ready()
    await dispatch.assigned(first.order_id)
    await dispatch.ask(PickUpDelivery(delivery_id=first.order_id, courier_id=courier_id), DeliveryView)
    await dispatch.ask(
        CompleteDelivery(delivery_id=first.order_id, courier_id=courier_id, recipient_name="Pat"),
        DeliveryView,
    )
    second = await dispatch.ready()
    await dispatch.assigned(second.order_id)
    other = await dispatch.courier(available=False)

    mine = await dispatch.ask(ListDeliveries(courier_id=courier_id), list[DeliveryView])
    delivered = await dispatch.ask(
        ListDeliveries(courier_id=courier_id, status="DELIVERED"), list[DeliveryView]
    )
    theirs = await dispatch.ask(ListDeliveries(courier_id=other), list[DeliveryView])
    peek = await dispatch.refused(GetDelivery(delivery_id=first.order_id, courier_id=other))

    assert [d.id for d in mine] == [second.order_id, first.order_id]
    assert [d.id for d in delivered] == [first.order_id]
    assert theirs == []
    assert peek.code == "not_found"


async def test_an_ended_delivery_shows_its_courier_nothing_more_of_the_patient(dispatch: Dispatch) -> None:
    courier_id = await dispatch.courier()
    event = await dispatch.ready()
    await dispatch.assigned(event.order_id)
    carried = await dispatch.ask(
        PickUpDelivery(delivery_id=event.order_id, courier_id=courier_id), DeliveryView
    )
    await dispatch.ask(
        FailDelivery(
            delivery_id=event.order_id, courier_id=courier_id, reason="NO_ONE_HOME", note="bell broken"
        ),
        DeliveryView,
    )
    handed = await dispatch.ask(
        CompleteDelivery(delivery_id=event.order_id, courier_id=courier_id, recipient_name="Pat"),
        DeliveryView,
    )

    [listed] = await dispatch.ask(ListDeliveries(courier_id=courier_id), list[DeliveryView])
    read = await dispatch.ask(GetDelivery(delivery_id=event.order_id, courier_id=courier_id), DeliveryView)
    [in_every] = [
        d
        for d in await dispatch.ask(ListDeliveries(courier_id=None), list[DeliveryView])
        if d.id == event.order_id
    ]
    whole = await dispatch.ask(GetDelivery(delivery_id=event.order_id), DeliveryView)

    assert carried.delivery_location == PATIENT  # while it was theirs to carry
    for seen in (handed, listed, read):
        assert (seen.status, seen.proof, seen.pharmacy_id) == ("DELIVERED", "NAME", "pharmacy-1")
        assert (seen.delivery_location, seen.recipient_name) == (None, None)
        assert [(a.reason, a.note) for a in seen.attempts] == [("NO_ONE_HOME", None)]
        assert seen.delivered_at == whole.delivered_at
    for seen in (in_every, whole):  # an admin's, or dispatch's
        assert (seen.delivery_location, seen.recipient_name) == (PATIENT, "Pat")
        assert [a.note for a in seen.attempts] == ["bell broken"]


async def test_the_service_serves_its_metrics(
    namespace: Namespace, probe: EventProbe, running: Start
) -> None:
    service = await running(build(namespace.settings(Settings, metrics_port=0)))
    assert service.health.server is not None
    event = OrderReadyForPickup(
        order_id=str(uuid4()),
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        pharmacy_location=PHARMACY,
        delivery_location=PATIENT,
        total_cents=2_500,
        controlled=False,
    )
    await probe.publish(event, correlation_id=event.order_id)
    await handled_everything(service, probe)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.health.server.port}") as http:
        scraped = (await http.get("/metrics")).text
        ready = await http.get("/health/ready")

    assert ready.status_code == 200
    assert 'service="delivery_service"' in scraped
    assert 'type="OrderReadyForPickup"' in scraped


async def test_every_list_is_read_from_an_index(dispatch: Dispatch) -> None:
    db = dispatch.service.db
    if "ferretdbVersion" not in await db.client.admin.command("buildInfo"):
        pytest.skip("query plans are FerretDB's; MongoDB plans these with its own indexes")
    newest_first = {"created_at": -1, "_id": 1}
    pages = [
        ("deliveries", {"status": "WAITING_FOR_COURIER"}, {"ready_at": 1, "_id": 1}),
        ("deliveries", {"listed": True}, newest_first),
        ("deliveries", {"listed": True, "status": "DELIVERED"}, newest_first),
        ("deliveries", {"courier_id": "c"}, newest_first),
        ("deliveries", {"courier_id": "c", "status": "DELIVERED"}, newest_first),
    ]
    for collection, query, sort in pages:
        find = {"find": collection, "filter": query, "sort": sort, "skip": Int64(0), "limit": Int64(20)}
        plan: Document = await db.command("explain", find)
        assert (plan["filterPushdown"], plan["sortPushdown"], plan["limitPushdown"]) == (True, True, True), (
            query
        )
        steps = " ".join(plan["queryPlanner"]["Plan"])
        assert "USING INDEX" in steps, (query, steps)
        assert "SCAN" not in steps, (query, steps)
    for query in ({"idle": True}, {"delivery_id": "d"}):
        plan = await db.command("explain", {"find": "couriers", "filter": query})
        assert plan["filterPushdown"] is True, query
