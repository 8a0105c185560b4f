"""The last mile: a pharmacy's dispensing queue (inventory_service), couriers and their deliveries
(delivery_service), and an order as a FHIR MedicationDispense. All behind RPC."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from contracts import commands as c
from contracts.events import Location
from user_service.audit import audited
from user_service.deps import CurrentUser, IdempotencyKey, Paging, ResourceId, Rpc, Staff, role_in
from user_service.domain import User, keyed_request_id, owner_scope
from user_service.fhir_out import medication_dispense
from user_service.problems import FieldInvalid
from user_service.schemas import (
    CourierIn,
    CourierOut,
    DeliverIn,
    DeliveryOut,
    DispensingOut,
    FailIn,
    Page,
)

router = APIRouter(tags=["dispensing and delivery"])

Courier = Annotated[User, Depends(role_in("courier"))]
# Who reads deliveries: their courier, or an admin (support, dispatch).
DeliveryReader = Annotated[User, Depends(role_in("courier", "admin"))]


def _request_id(user: User, key: str | None) -> str | None:
    """A move sent again with the same Idempotency-Key is the same request: carried out once (a failed
    attempt is not counted twice when only its answer was lost)."""
    return None if key is None else keyed_request_id(user.id, key)


def _courier_scope(user: User) -> str | None:
    """A courier reaches only their own deliveries; an admin every one."""
    return None if user.role == "admin" else user.id


# --- dispensing: the pharmacy's final check ---------------------------------------------------------


@router.get(
    "/pharmacies/{pharmacy_id}/dispensing",
    response_model=Page[DispensingOut],
    dependencies=[audited("pharmacy.dispensing_list", subject="pharmacy_id")],
)
async def dispensing_queue(
    pharmacy_id: ResourceId, user: Staff, rpc: Rpc, page: Paging
) -> Page[DispensingOut]:
    """The paid orders waiting for this pharmacy's final check, oldest payment first: its staff and
    admins only (403 to a pharmacist of another pharmacy)."""
    command = c.ListDispensingQueue(
        pharmacy_id=pharmacy_id, actor_id=user.id, actor_is_admin=user.role == "admin", page=page
    )
    found = await rpc.ask(command, list[c.DispensingView])
    return Page(items=[DispensingOut.of(v) for v in found], limit=page.limit, offset=page.offset)


@router.post(
    "/orders/{order_id}/dispense",
    response_model=DispensingOut,
    dependencies=[audited("order.dispense", subject="order_id")],
)
async def dispense(
    order_id: ResourceId, user: Staff, rpc: Rpc, idempotency_key: IdempotencyKey = None
) -> DispensingOut:
    """Mark a paid order dispensed after the final check, recording the pharmacist: its stock is sold
    and it waits for a courier (READY_FOR_PICKUP). Only the staff of the order's pharmacy, or an admin;
    409 when it is not paid, or was dispensed by someone else."""
    command = c.DispenseOrder(
        order_id=order_id,
        actor_id=user.id,
        actor_is_admin=user.role == "admin",
        request_id=_request_id(user, idempotency_key),
    )
    return DispensingOut.of(await rpc.ask(command, c.DispensingView))


@router.get(
    "/orders/{order_id}/fhir",
    dependencies=[audited("order.fhir", subject="order_id")],
    response_class=JSONResponse,
    responses={200: {"content": {"application/fhir+json": {}}}},
)
async def order_as_fhir(order_id: ResourceId, user: CurrentUser, rpc: Rpc) -> JSONResponse:
    """The order as a FHIR R4 MedicationDispense: `in-progress` until delivered, then `completed`."""
    order = await rpc.ask(c.GetOrder(owner_id=owner_scope(user, None), order_id=order_id), c.OrderView)
    return JSONResponse(medication_dispense(order), media_type="application/fhir+json")


# --- couriers ---------------------------------------------------------------------------------------


@router.put("/couriers/me", response_model=CourierOut, dependencies=[audited("courier.update")])
async def update_me(body: CourierIn, courier: Courier, rpc: Rpc) -> CourierOut:
    """Say whether you take deliveries, and where you are. Becoming available with a ready order
    waiting within reach assigns it to you at once. Going off duty with an order assigned and not
    collected hands it back (it goes to another courier); once collected it is refused (409): deliver
    it or record a failed attempt first. It sets the whole state, so sent again it changes nothing
    more: it takes no Idempotency-Key (a key would make a newer position under an old key be dropped)."""
    command = c.UpdateCourier(
        courier_id=courier.id,
        available=body.available,
        location=Location(latitude=body.latitude, longitude=body.longitude),
    )
    return CourierOut.of(await rpc.ask(command, c.CourierView))


@router.get("/couriers/me", response_model=CourierOut, dependencies=[audited("courier.read")])
async def read_me(courier: Courier, rpc: Rpc) -> CourierOut:
    """Whether you take deliveries, where you last said you were, and the delivery you carry now.
    404 until you have said so once (PUT): until then you take none."""
    return CourierOut.of(await rpc.ask(c.GetCourier(courier_id=courier.id), c.CourierView))


@router.get("/deliveries", response_model=Page[DeliveryOut], dependencies=[audited("delivery.list")])
async def list_deliveries(user: DeliveryReader, rpc: Rpc, page: Paging) -> Page[DeliveryOut]:
    """Your deliveries, newest first (an admin sees every one): where to collect each and where to take
    it, its window, ETA and attempts. Nothing of what is inside, no price, never the PIN. Once one has
    ended (DELIVERED, RETURNED, CANCELLED) you no longer see the patient's location and window, the
    recipient's name or your notes at the door (null); its status, times, pharmacy and proof kind stay.
    An admin still sees them."""
    command = c.ListDeliveries(courier_id=_courier_scope(user), page=page)
    found = await rpc.ask(command, list[c.DeliveryView])
    return Page(items=[DeliveryOut.of(v) for v in found], limit=page.limit, offset=page.offset)


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    dependencies=[audited("delivery.read", subject="delivery_id")],
)
async def get_delivery(delivery_id: ResourceId, user: DeliveryReader, rpc: Rpc) -> DeliveryOut:
    """One of your deliveries (an admin: any), shown as in the list: an ended one without the patient's
    location, window, the recipient's name or your notes, to you."""
    command = c.GetDelivery(delivery_id=delivery_id, courier_id=_courier_scope(user))
    return DeliveryOut.of(await rpc.ask(command, c.DeliveryView))


@router.post(
    "/deliveries/{delivery_id}/pickup",
    response_model=DeliveryOut,
    dependencies=[audited("delivery.pickup", subject="delivery_id")],
)
async def pick_up(
    delivery_id: ResourceId, courier: Courier, rpc: Rpc, idempotency_key: IdempotencyKey = None
) -> DeliveryOut:
    """You have the order from the pharmacy: the patient's card is charged now."""
    command = c.PickUpDelivery(
        delivery_id=delivery_id, courier_id=courier.id, request_id=_request_id(courier, idempotency_key)
    )
    return DeliveryOut.of(await rpc.ask(command, c.DeliveryView))


@router.post(
    "/deliveries/{delivery_id}/deliver",
    response_model=DeliveryOut,
    dependencies=[audited("delivery.deliver", subject="delivery_id")],
)
async def deliver(
    delivery_id: ResourceId,
    body: DeliverIn,
    courier: Courier,
    rpc: Rpc,
    idempotency_key: IdempotencyKey = None,
) -> DeliveryOut:
    """Handed over, with the proof the delivery asks for: `pin` (the 4 digits the patient tells you)
    when its `proof` is PIN, never left unattended; `recipient_name` when it is NAME. A wrong PIN is
    refused (422) and counted."""
    if body.pin is None and body.recipient_name is None:
        # Raised, not returned: the same 422 from the API, and a message beside the field on the web page.
        raise FieldInvalid("pin", "give the patient's PIN, or the recipient's name, as the delivery asks")
    command = c.CompleteDelivery(
        delivery_id=delivery_id,
        courier_id=courier.id,
        pin=body.pin,
        recipient_name=body.recipient_name,
        request_id=_request_id(courier, idempotency_key),
    )
    return DeliveryOut.of(await rpc.ask(command, c.DeliveryView))


@router.post(
    "/deliveries/{delivery_id}/fail",
    response_model=DeliveryOut,
    dependencies=[audited("delivery.fail", subject="delivery_id")],
)
async def fail(
    delivery_id: ResourceId, body: FailIn, courier: Courier, rpc: Rpc, idempotency_key: IdempotencyKey = None
) -> DeliveryOut:
    """A failed attempt, with its coded reason. After the last one allowed, the order goes back to
    the pharmacy (RETURNED) and the patient is refunded. Send an `Idempotency-Key` to retry safely:
    every move here takes one, and a retry with it is not carried out twice."""
    command = c.FailDelivery(
        delivery_id=delivery_id,
        courier_id=courier.id,
        reason=body.reason,
        note=body.note,
        request_id=_request_id(courier, idempotency_key),
    )
    return DeliveryOut.of(await rpc.ask(command, c.DeliveryView))
