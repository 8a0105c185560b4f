"""One thin function per message. The reservation is written so a crash at any step can be resumed."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

from pydantic import Field

from contracts.base import Envelope, Event
from contracts.commands import (
    AddPharmacyStaff,
    AvailabilityView,
    CreateMedication,
    CreatePharmacy,
    DiscontinueMedication,
    DispenseOrder,
    DispensingView,
    GetAvailability,
    GetMedication,
    GetStock,
    ListDispensingQueue,
    ListMedications,
    ListPharmacies,
    ListPharmacyStaff,
    ListStock,
    MedicationView,
    OrderQuote,
    PharmacyStaffView,
    PharmacyView,
    QuoteOrder,
    RemovePharmacyStaff,
    SetStock,
    StockView,
    UpdateMedication,
)
from contracts.events import (
    DeliveryReturned,
    LineShortage,
    OrderCancelled,
    OrderCreated,
    OrderDispensed,
    PaymentApproved,
    PaymentDeclined,
    PrescribedLine,
    ReservationDeadline,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from inventory_service import domain, store
from inventory_service.domain import Fees, Medication, Pharmacy, Plan, Reservation
from inventory_service.store import Stores
from service_runtime.aggregate import minted_id
from service_runtime.clock import utc_now
from service_runtime.errors import CommandRefused, ConcurrentModification
from service_runtime.service import Service, wrap
from service_runtime.settings import RuntimeSettings
from service_runtime.store import UniqueViolation

log = logging.getLogger(__name__)


class InventorySettings(RuntimeSettings):
    mongodb_database: str = "pharmacy_inventory"
    # How far from the delivery address a pharmacy may be to serve an order.
    delivery_radius_km: float = 50.0
    # How long stock stays held for an order waiting for payment; then the reservation expires.
    reservation_hold_seconds: float = Field(default=900.0, gt=0)
    # Added to every order's price (cents).
    service_fee_cents: int = Field(default=199, ge=0)
    # Delivery: a base, and a rate for every started km from the pharmacy to the patient (cents).
    delivery_base_fee_cents: int = Field(default=299, ge=0)
    delivery_fee_per_km_cents: int = Field(default=50, ge=0)

    @property
    def fees(self) -> Fees:
        return Fees(
            service_cents=self.service_fee_cents,
            delivery_base_cents=self.delivery_base_fee_cents,
            delivery_per_km_cents=self.delivery_fee_per_km_cents,
        )


# Rounds of service.change (5 tries each) a reservation waits out at one contended pharmacy.
CONTENDED_RETRIES = 10


def register(service: Service, s: Stores, settings: InventorySettings) -> None:
    hold = timedelta(seconds=settings.reservation_hold_seconds)
    fees = settings.fees

    async def hold_at(pharmacy_id: str, order_id: str, plan: Plan) -> bool:
        """Hold the plan's lines; False if the pharmacy ran out meanwhile. Writers of the same pharmacy
        racing past `change`'s own retries (replicas on other partitions, at a busy pharmacy) are
        waited out here: a contended pharmacy is not an empty one."""
        attempt = 1
        while True:
            try:
                await service.change(
                    s.pharmacies, pharmacy_id, lambda p: _hold(p, order_id, plan), cause=None
                )
            except domain.OutOfStock:
                return False
            except ConcurrentModification:
                if attempt == CONTENDED_RETRIES:
                    raise  # the message is retried in place, as for an outage
                await asyncio.sleep(random.uniform(0, 0.02 * attempt))
                attempt += 1
            else:
                return True

    def _hold(pharmacy: Pharmacy, order_id: str, plan: Plan) -> list[Event]:
        pharmacy.hold(order_id, plan.lines, utc_now())
        return []

    async def reserve(event: OrderCreated) -> Plan | list[LineShortage]:
        """Hold every line at the nearest pharmacy that has them; try the next one if it ran out meanwhile."""
        tried: set[str] = set()
        catalogue = await store.medications_by_id(s, [line.medication_id for line in event.lines])
        while True:
            outcome = domain.plan_reservation(
                event.lines,
                event.delivery_location,
                await store.all_pharmacies(s),
                catalogue,
                radius_km=settings.delivery_radius_km,
                fees=fees,
                exclude=frozenset(tried),
                verified=event.verified_by is not None,
            )
            if not isinstance(outcome, Plan) or await hold_at(outcome.pharmacy.id, event.order_id, outcome):
                return outcome
            tried.add(outcome.pharmacy.id)

    @service.events.on(OrderCreated)
    async def reserve_stock(event: OrderCreated, envelope: Envelope) -> None:
        # Step 1: a RESERVING record first, so a crash after holding stock can be found and finished.
        started = Reservation(
            id=event.order_id,
            state="RESERVING",
            patient_id=event.patient_id,
            payment_method_id=event.payment_method_id,
            verified_by=event.verified_by,
            created_at=utc_now(),
        )
        first = await s.reservations.add(started)
        current = started if first else await s.reservations.get(event.order_id)
        if current is None or current.state != "RESERVING":
            # Already decided, or the order was cancelled before we saw it: publish leftovers only.
            await service.publish_pending(s.reservations, event.order_id)
            return
        # Step 2: hold the stock, or find the hold a crashed attempt made (none can have, if the record
        # of step 1 was only just written: the search reads every pharmacy).
        holder = None if first else await store.pharmacy_holding(s, event.order_id)
        if holder is not None:
            hold = holder.holds[event.order_id]
            outcome: Plan | list[LineShortage] = domain.priced_plan(
                holder, hold.lines, event.delivery_location, fees
            )
        else:
            outcome = await reserve(event)
        # Step 3: record the decision and its event in one write.
        await service.change(
            s.reservations, event.order_id, lambda r: _decide(r, event, outcome), cause=envelope
        )

    def _decide(
        reservation: Reservation, event: OrderCreated, outcome: Plan | list[LineShortage]
    ) -> list[Event]:
        if reservation.state != "RESERVING":
            return []
        if isinstance(outcome, Plan):
            reservation.state = "RESERVED"
            reservation.pharmacy_id = outcome.pharmacy.id
            reservation.lines = outcome.lines
            reservation.total_cents = outcome.total_cents
            reservation.service_fee_cents = outcome.service_fee_cents
            reservation.delivery_fee_cents = outcome.delivery_fee_cents
            return [
                StockReserved(
                    order_id=event.order_id,
                    patient_id=event.patient_id,
                    pharmacy_id=outcome.pharmacy.id,
                    lines=tuple(outcome.lines),
                    total_cents=outcome.total_cents,
                    payment_method_id=event.payment_method_id,
                    service_fee_cents=outcome.service_fee_cents,
                    delivery_fee_cents=outcome.delivery_fee_cents,
                ),
                # The hold's end rides in the same write: the broker keeps it until it is due.
                reservation.deadline(hold, utc_now()),
            ]
        reservation.state = "FAILED"
        reservation.shortages = outcome
        return [StockReservationFailed(order_id=event.order_id, shortages=tuple(outcome))]

    async def release(order_id: str, reason: str, envelope: Envelope) -> None:
        """End the order's hold of stock, whatever step it reached (domain.give_back says what goes where);
        remember the order if it never got stock."""
        tombstone = Reservation(id=order_id, state="RELEASED", created_at=utc_now())
        if await s.reservations.add(tombstone, caused_by=str(envelope.event_id)):
            return  # cancelled before OrderCreated reached us: the reservation will not be made
        reservation = await s.reservations.get(order_id)
        assert reservation is not None
        if reservation.state == "RESERVING":
            # A crashed attempt may have held stock before it recorded where.
            holder = await store.pharmacy_holding(s, order_id)
            pharmacy_id = holder.id if holder is not None else None
        else:
            pharmacy_id = reservation.pharmacy_id if reservation.state in domain.HAS_STOCK else None
        # The stock first, the reservation second: a crash in between is finished by the redelivery,
        # which finds the reservation as it was (each move on the pharmacy happens once).
        if pharmacy_id is not None:
            await service.change(s.pharmacies, pharmacy_id, lambda p: _give_back(p, reservation), cause=None)
        now = utc_now()
        await service.change(s.reservations, order_id, lambda r: _end(r, reason, now), cause=envelope)

    def _give_back(pharmacy: Pharmacy, reservation: Reservation) -> list[Event]:
        domain.give_back(pharmacy, reservation)
        return []

    def _end(reservation: Reservation, reason: str, at: datetime) -> list[Event]:
        reservation.end(reason, at)
        return []

    def _release(pharmacy: Pharmacy, order_id: str) -> list[Event]:
        pharmacy.release(order_id)
        return []

    @service.events.on(PaymentDeclined)
    async def release_declined(event: PaymentDeclined, envelope: Envelope) -> None:
        await release(event.order_id, event.reason, envelope)

    @service.events.on(OrderCancelled)
    async def release_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
        await release(event.order_id, event.reason, envelope)

    @service.events.on(PaymentApproved)
    async def hold_paid(event: PaymentApproved, envelope: Envelope) -> None:
        """The card is authorised: the reservation is PAID and keeps its hold until it is dispensed."""
        if await s.reservations.get(event.order_id) is None:
            return  # never reserved here: nothing is held for it
        # Released (cancelled) or expired meanwhile: nothing changes; payment_service voids or refunds
        # once order_service cancels the order.
        await service.change(
            s.reservations, event.order_id, lambda r: _pay(r, envelope.occurred_at), cause=envelope
        )

    def _pay(reservation: Reservation, at: datetime) -> list[Event]:
        reservation.pay(at)
        return []

    @service.events.on(DeliveryReturned)
    async def take_in_return(event: DeliveryReturned, envelope: Envelope) -> None:
        """The courier brought a dispensed order back: its stock is counted as returned, never resold."""
        reservation = await s.reservations.get(event.order_id)
        if reservation is None or reservation.state not in ("DISPENSED", "SOLD"):
            # Returned already (a redelivery, or cancelled after dispensing), or never sent out.
            log.info(
                "order %s was not out for delivery (%s): nothing comes back",
                event.order_id,
                reservation.state if reservation else "unknown",
            )
            return
        lines, pharmacy_id = reservation.lines, reservation.pharmacy_id
        assert pharmacy_id is not None
        # As `release`: the stock first, guarded on the pharmacy (`returns`), then the reservation.
        await service.change(
            s.pharmacies, pharmacy_id, lambda p: _take_in_return(p, event.order_id, lines), cause=None
        )
        now = utc_now()
        await service.change(
            s.reservations, event.order_id, lambda r: _bring_back(r, event.reason, now), cause=envelope
        )

    def _take_in_return(pharmacy: Pharmacy, order_id: str, lines: list[ReservedLine]) -> list[Event]:
        pharmacy.take_in_return(order_id, lines)
        return []

    def _bring_back(reservation: Reservation, reason: str, at: datetime) -> list[Event]:
        reservation.bring_back(reason, at)
        return []

    @service.events.on(ReservationDeadline)
    async def expire_unpaid(event: ReservationDeadline, envelope: Envelope) -> None:
        """The hold ran out: an unpaid reservation expires, then its stock goes back to the shelf."""
        reason = domain.unpaid_reason(hold)
        reservation = await service.change(
            s.reservations, event.reservation_id, lambda r: r.expire(reason), cause=envelope
        )
        # Expired before released: a payment handled after a crash in between finds EXPIRED and sells
        # nothing, and the redelivered deadline (already applied above) finishes the release here.
        if reservation.state != "EXPIRED" or reservation.pharmacy_id is None:
            return
        pharmacy = await s.pharmacies.get(reservation.pharmacy_id)
        if pharmacy is not None and event.order_id in pharmacy.holds:
            await service.change(s.pharmacies, pharmacy.id, lambda p: _release(p, event.order_id), cause=None)

    # --- commands from the gateway ---------------------------------------------------------------

    @service.commands.on(CreatePharmacy)
    async def create_pharmacy(command: CreatePharmacy) -> PharmacyView:
        pharmacy, events = domain.open_pharmacy(
            minted_id(command.request_id, "pharmacy"),
            command.name,
            command.address,
            command.location,
            founder_id=command.founder_id,
            now=utc_now(),
        )
        # The pharmacy and its founder's joining in one insert: never a pharmacy without its first staff.
        if await s.pharmacies.add(pharmacy, wrap(events, None, pharmacy.id)):
            await service.publish_pending(s.pharmacies, pharmacy.id)
        else:
            # Delivered again after it was carried out: the pharmacy it created, not a second one.
            created = await s.pharmacies.get(pharmacy.id)
            assert created is not None
            pharmacy = created
        return pharmacy.view()

    @service.commands.on(ListPharmacies)
    async def list_pharmacies(command: ListPharmacies) -> list[PharmacyView]:
        if command.pharmacy_ids is not None:
            return [p.view() for p in await store.pharmacies_by_id(s, command.pharmacy_ids)]
        # Equality on an array field matches a pharmacy whose staff holds this user.
        query = {} if command.staff_member is None else {"staff": command.staff_member}
        found = await s.pharmacies.find(query, skip=command.page.offset, limit=command.page.limit)
        return [p.view() for p in found]

    async def check_catalogue_entry(medication: Medication) -> None:
        """Refuse an entry that breaks a catalogue rule, its codes checked against every other entry.

        Race-free because every catalogue write queues on one partition (CreateMedication.PARTITION_BY):
        nothing claims a code between this read and the write that follows it.
        """
        try:
            domain.check_entry(
                schedule=medication.schedule,
                prescription_only=medication.prescription_only,
                codes=medication.codes,
            )
            carriers = await store.medications_carrying(s, medication.code_keys)
            domain.check_codes_free(medication.id, medication.codes, carriers)
        except domain.CodeTaken as exc:
            raise CommandRefused("conflict", str(exc), exc.field) from exc
        except domain.CatalogueRefused as exc:
            raise CommandRefused("invalid", exc.detail, exc.field) from exc

    @service.commands.on(CreateMedication)
    async def create_medication(command: CreateMedication) -> MedicationView:
        medication_id = minted_id(command.request_id, "medication")
        if (created := await s.medications.get(medication_id)) is not None:
            return created.view()  # delivered again after it was carried out
        medication = Medication(
            id=medication_id,
            name=command.name,
            strength=command.strength,
            form=command.form,
            price_cents=command.price_cents,
            prescription_only=command.prescription_only,
            schedule=command.schedule,
            catalogue_key=domain.catalogue_key(command.name, command.strength, command.form),
            created_at=utc_now(),
        )
        medication.recode(command.codes)
        await check_catalogue_entry(medication)
        # Its id was checked above: refused here, it was for its name, strength and form.
        if not await s.medications.add(medication):
            raise CommandRefused(
                "conflict", "a medication with this name, strength and form already exists", "name"
            )
        return medication.view()

    async def _medication(medication_id: str) -> Medication:
        medication = await s.medications.get(medication_id)
        if medication is None or medication.discontinued:
            raise CommandRefused("not_found", f"medication {medication_id} not found")
        return medication

    @service.commands.on(GetMedication)
    async def get_medication(command: GetMedication) -> MedicationView:
        return (await _medication(command.medication_id)).view()

    @service.commands.on(ListMedications)
    async def list_medications(command: ListMedications) -> list[MedicationView]:
        if command.medication_ids is not None:
            found = await store.medications_by_id(s, command.medication_ids)
            return [m.view() for m in found.values() if not m.discontinued]
        code_key = None if command.code is None else domain.code_key(command.code)
        listed = await store.list_medications(
            s,
            limit=command.page.limit,
            offset=command.page.offset,
            code_key=code_key,
            name_prefix=command.name_prefix,
        )
        return [m.view() for m in listed]

    @service.commands.on(QuoteOrder)
    async def quote_order(command: QuoteOrder) -> OrderQuote:
        lines = [PrescribedLine(medication_id=q.medication_id, quantity=q.quantity) for q in command.lines]
        return domain.quote(
            lines,
            command.destination,
            await store.all_pharmacies(s),
            await store.medications_by_id(s, [line.medication_id for line in lines]),
            radius_km=settings.delivery_radius_km,
            fees=fees,
        )

    @service.commands.on(UpdateMedication)
    async def update_medication(command: UpdateMedication) -> MedicationView:
        current = await _medication(command.medication_id)
        changes = command.model_dump(
            include={"name", "strength", "form", "price_cents", "prescription_only"}, exclude_none=True
        )

        def apply(m: Medication) -> list[Event]:
            for name, value in changes.items():
                setattr(m, name, value)
            if command.sets_schedule:
                m.schedule = command.schedule
            if command.codes is not None:
                m.recode(command.codes)
            m.catalogue_key = domain.catalogue_key(m.name, m.strength, m.form)
            return []

        # The entry as it would be, checked before anything is written.
        proposed = current.model_copy(deep=True)
        apply(proposed)
        await check_catalogue_entry(proposed)
        try:
            updated = await service.change(s.medications, command.medication_id, apply, cause=None)
        except UniqueViolation as exc:
            raise CommandRefused(
                "conflict", "a medication with this name, strength and form already exists"
            ) from exc
        return updated.view()

    @service.commands.on(DiscontinueMedication)
    async def discontinue_medication(command: DiscontinueMedication) -> None:
        await _medication(command.medication_id)

        def apply(m: Medication) -> list[Event]:
            m.discontinued = True
            # Free the name for a new entry; the old one stays for the orders that name it.
            m.catalogue_key = f"{m.catalogue_key}|discontinued|{m.id}"
            return []

        await service.change(s.medications, command.medication_id, apply, cause=None)

    async def _pharmacy(pharmacy_id: str) -> Pharmacy:
        pharmacy = await s.pharmacies.get(pharmacy_id)
        if pharmacy is None:
            raise CommandRefused("not_found", f"pharmacy {pharmacy_id} not found")
        return pharmacy

    @service.commands.on(SetStock)
    async def set_stock(command: SetStock) -> StockView:
        await _medication(command.medication_id)
        await _pharmacy(command.pharmacy_id)

        def apply(p: Pharmacy) -> list[Event]:
            # Decided on the pharmacy as it is now, under its lock: its staff as of this very write.
            p.restock(
                command.medication_id,
                command.quantity,
                actor_id=command.actor_id,
                actor_is_admin=command.actor_is_admin,
            )
            return []

        try:
            pharmacy = await service.change(s.pharmacies, command.pharmacy_id, apply, cause=None)
        except domain.NotOnStaff as exc:
            raise CommandRefused("forbidden", str(exc)) from exc
        return pharmacy.stock_view(command.medication_id)

    @service.commands.on(GetStock)
    async def get_stock(command: GetStock) -> StockView:
        pharmacy = await _pharmacy(command.pharmacy_id)
        if not command.actor_is_admin and command.actor_id not in pharmacy.staff:
            raise CommandRefused(
                "forbidden", f"only the staff of pharmacy {pharmacy.id} or an admin see its stock"
            )
        await _medication(command.medication_id)
        return pharmacy.stock_view(command.medication_id)

    @service.commands.on(ListStock)
    async def list_stock(command: ListStock) -> list[StockView]:
        pharmacy = await _pharmacy(command.pharmacy_id)
        try:
            pharmacy.check_staff(command.actor_id, actor_is_admin=command.actor_is_admin, to="see its stock")
        except domain.NotOnStaff as exc:
            raise CommandRefused("forbidden", str(exc)) from exc
        page = sorted(pharmacy.stock)[command.page.offset : command.page.offset + command.page.limit]
        return [pharmacy.stock_view(medication_id) for medication_id in page]

    @service.commands.on(AddPharmacyStaff)
    async def add_staff(command: AddPharmacyStaff) -> PharmacyStaffView:
        await _pharmacy(command.pharmacy_id)

        def apply(p: Pharmacy) -> list[Event]:
            return p.add_staff(command.user_id, added_by=command.actor_id)

        pharmacy = await service.change(s.pharmacies, command.pharmacy_id, apply, cause=None)
        return PharmacyStaffView(pharmacy_id=pharmacy.id, staff=tuple(pharmacy.staff))

    @service.commands.on(RemovePharmacyStaff)
    async def remove_staff(command: RemovePharmacyStaff) -> PharmacyStaffView:
        await _pharmacy(command.pharmacy_id)

        def apply(p: Pharmacy) -> list[Event]:
            return p.remove_staff(command.user_id, removed_by=command.actor_id)

        pharmacy = await service.change(s.pharmacies, command.pharmacy_id, apply, cause=None)
        return PharmacyStaffView(pharmacy_id=pharmacy.id, staff=tuple(pharmacy.staff))

    @service.commands.on(ListPharmacyStaff)
    async def list_staff(command: ListPharmacyStaff) -> PharmacyStaffView:
        pharmacy = await _pharmacy(command.pharmacy_id)
        return PharmacyStaffView(pharmacy_id=pharmacy.id, staff=tuple(pharmacy.staff))

    # --- dispensing -------------------------------------------------------------------------------

    @service.commands.on(DispenseOrder)
    async def dispense_order(command: DispenseOrder) -> DispensingView:
        """The final check of a paid order: its stock is sold, and OrderDispensed announced once."""
        reservation = await s.reservations.get(command.order_id)
        if reservation is None or reservation.pharmacy_id is None:
            raise CommandRefused("not_found", f"order {command.order_id} not found")
        if reservation.state == "DISPENSED" and reservation.dispensed_by == command.actor_id:
            return reservation.queue_view()  # delivered again after it was carried out
        pharmacy = await _pharmacy(reservation.pharmacy_id)
        now = utc_now()
        try:
            # Who asks before the order's state: someone off the staff learns nothing of where it is.
            pharmacy.check_staff(
                command.actor_id, actor_is_admin=command.actor_is_admin, to="dispense its orders"
            )
            reservation.check_dispensable(command.actor_id)
            # The reservation first, with its OrderDispensed in the same write: the dispensing is
            # decided and announced at once. The sale on the pharmacy follows; when a crash or an
            # outage cuts it off, inventory's own OrderDispensed, published from the outbox, makes it
            # (`complete_sale`), and a return or cancel meanwhile sells before it takes back.
            location = pharmacy.location
            dispensed = await service.change(
                s.reservations,
                command.order_id,
                lambda r: r.dispense(command.actor_id, now, location),
                cause=None,
                at=now,
            )
            await service.change(s.pharmacies, pharmacy.id, lambda p: _sell(p, command.order_id), cause=None)
        except domain.NotOnStaff as exc:
            raise CommandRefused("forbidden", str(exc)) from exc
        except domain.NotDispensable as exc:
            raise CommandRefused("conflict", str(exc)) from exc
        return dispensed.queue_view()

    def _sell(pharmacy: Pharmacy, order_id: str) -> list[Event]:
        pharmacy.sell(order_id)
        return []

    @service.events.on(OrderDispensed)
    async def complete_sale(event: OrderDispensed, envelope: Envelope) -> None:
        """Our own dispensing, back from the outbox: its stock is sold, once (a no-op when the command
        got that far; after a return or cancel, the hold is gone already)."""
        pharmacy = await s.pharmacies.get(event.pharmacy_id)
        if pharmacy is None or event.order_id not in pharmacy.holds:
            return  # sold already: no second write of the pharmacy, the document every order contends for
        await service.change(s.pharmacies, event.pharmacy_id, lambda p: _sell(p, event.order_id), cause=None)

    @service.commands.on(ListDispensingQueue)
    async def list_dispensing_queue(command: ListDispensingQueue) -> list[DispensingView]:
        pharmacy = await _pharmacy(command.pharmacy_id)
        try:
            pharmacy.check_staff(
                command.actor_id, actor_is_admin=command.actor_is_admin, to="see its dispensing queue"
            )
        except domain.NotOnStaff as exc:
            raise CommandRefused("forbidden", str(exc)) from exc
        waiting = await store.dispensing_queue(
            s, pharmacy.id, limit=command.page.limit, offset=command.page.offset
        )
        return [r.queue_view() for r in waiting]

    @service.commands.on(GetAvailability)
    async def get_availability(command: GetAvailability) -> list[AvailabilityView]:
        await _medication(command.medication_id)
        return domain.availability(command.medication_id, await store.all_pharmacies(s), command.near)
