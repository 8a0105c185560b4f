"""Assignment: a delivery and a courier, two aggregates changed without a transaction between them.

Many writers meet here: a delivery's partition (its order's events, its moves) and a courier's
(UpdateCourier) each try to pair them, on any replica, at once. Every write is one version-conditional
save (`Service.change` decides again on a fresh copy when another writer came first), and the pairing
takes two of them, in this order:

1. **Claim the courier**, naming the delivery: `courier.delivery_id = D`, only while the courier is idle
   (available, nothing in hand). Of two deliveries racing for one courier, one claim wins; the other
   sees the courier taken and tries the next one, or waits.
2. **Assign the delivery** to the claimed courier: `delivery.courier_id = C`, ASSIGNED, DeliveryAssigned
   in its outbox, only while it is WAITING_FOR_COURIER, and only if the courier's claim still names it.
   Assigned to C already: nothing more. Assigned elsewhere, or cancelled: the claim lost.

A claim is released (`courier.delivery_id = None`) only once its delivery no longer waits and is not
the courier's, or has ended, or the courier handed it back (`domain.claim_released`). Any other claim
on a waiting delivery is never released, so the claim a step 2 has seen still stands when it writes:
no courier ever carries two.

A crash between the two writes leaves a half-done claim: a courier naming a waiting delivery. The
message that was being handled is delivered again (it was not acknowledged) and runs the same steps,
which start from what is stored: a delivery's dispatch first finishes the claims that name it, a
courier's settling first finishes (or drops) the claim it holds. A half-done claim is finished even
if the courier stopped taking deliveries since (the delivery was theirs first), unless their going
off duty handed it back (below). Every path ends by releasing the claims its delivery no longer needs
and settling those couriers, so a courier claimed for a delivery another courier got is free again,
and takes the next waiting delivery. A claim no redelivery comes back to (its message
dead-lettered) is settled by the courier's next UpdateCourier, or released once the next courier who
comes free takes the delivery it names.

**Handing back.** A courier going off duty with a delivery they have not collected gives it back.
First the refusal, written nowhere: collected, it is theirs to deliver or to fail first. Then the
courier is stored off duty, still naming the delivery: from this write on, nothing gives them another
one (a claim needs them idle), whatever dispatch runs meanwhile. Then the delivery (WAITING_FOR_COURIER
again, the courier in its `handed_back_by`, DeliveryUnassigned in its outbox), then it is dispatched
again, which releases the courier's claim; off duty, they take nothing more. The mark makes that
claim over and keeps the delivery from going back to them, so a step 2 racing the hand-back either
lands first (and the hand-back undoes it) or sees the mark and loses. (The delivery first instead
left a gap: its DeliveryUnassigned, handled on another partition before the courier was stored off
duty, released a courier still on duty, who was then given the next waiting delivery.) A crash
between the two writes leaves an off-duty courier holding an uncollected delivery: their command
failed, and the PUT sent again finds them off duty and hands it back then. A pickup racing the
hand-back (the same courier's) makes it refused: the courier is put back on duty, as they were.

No wake-up is lost: a new delivery is stored as waiting before it looks for idle couriers, and a
courier is stored as idle before it looks for waiting deliveries, so of the two searches racing, at
least one sees the other's write. And a courier's search is not lost with the handler that was to
run it: every write that frees a courier (on duty again, their delivery over) or moves a free one far
enough to reach other pharmacies (`Rules.free_move_km`) carries CourierFree in its outbox, which
comes back to settle them.
"""

from __future__ import annotations

import logging

from contracts.base import Envelope
from delivery_service import domain, store
from delivery_service.domain import Courier, CourierNotFree, Delivery, DeliveryTaken, Rules
from delivery_service.store import Stores
from service_runtime.clock import utc_now
from service_runtime.service import Service

log = logging.getLogger(__name__)

# Rounds of one courier's settling (finish, drop, claim anew) before it is left for its next update.
_ROUNDS = 20


class Dispatcher:
    """Pairs waiting deliveries with idle couriers, by the protocol above."""

    def __init__(self, service: Service, s: Stores, rules: Rules) -> None:
        self.service = service
        self.s = s
        self.rules = rules

    async def dispatch(self, delivery_id: str) -> None:
        """Bring a delivery's couriers in line with it: give it one while it waits (a claim made for it
        first, else the nearest idle one within reach), and free those it no longer needs."""
        delivery = await self.s.deliveries.get(delivery_id)
        if delivery is not None and delivery.status == "WAITING_FOR_COURIER":
            await self._find_courier(delivery)
        await self.settle(*await self._release_stale_claims(delivery_id))

    async def settle(self, *courier_ids: str) -> None:
        """Couriers who may be free: finish or drop the claim each holds, or give each the waiting
        delivery within reach that has waited longest."""
        todo = list(courier_ids)
        while todo:
            todo += await self._settle(todo.pop())

    async def _find_courier(self, delivery: Delivery) -> None:
        claims = [
            c for c in await store.claiming(self.s, delivery.id) if not domain.claim_released(delivery, c.id)
        ]
        if claims:
            # Half done by a crashed attempt (or racing with one now): finish it.
            await self._assign(delivery.id, claims[0].id)
            return
        passed: set[str] = set()
        while True:
            idle = [c for c in await store.idle_couriers(self.s) if c.id not in passed]
            chosen = domain.choose_courier(delivery, idle, self.rules)
            if chosen is None:
                log.info("delivery %s waits for a courier", delivery.id)
                return
            if await self._claim(chosen.id, delivery.id):
                # Lost (taken meanwhile): the caller's release of stale claims frees the courier.
                await self._assign(delivery.id, chosen.id)
                return
            passed.add(chosen.id)

    async def _settle(self, courier_id: str) -> list[str]:
        """One courier's settling; the couriers it freed on the way, to settle next."""
        for _ in range(_ROUNDS):
            courier = await self.s.couriers.get(courier_id)
            if courier is None:
                return []
            if courier.delivery_id is not None:
                held = await self.s.deliveries.get(courier.delivery_id)
                if domain.claim_released(held, courier_id):
                    await self._release(courier_id, courier.delivery_id)
                    continue
                assert held is not None
                if held.status == "WAITING_FOR_COURIER":
                    if await self._assign(held.id, courier_id):
                        return await self._release_stale_claims(held.id)
                    continue
                return []  # carrying it
            if not courier.idle:
                return []
            waiting = await self._waiting_within_reach(courier)
            if waiting is None:
                return []
            # Claimed by someone else meanwhile, or the delivery went elsewhere: the next round sees it.
            if await self._claim(courier_id, waiting.id) and await self._assign(waiting.id, courier_id):
                return await self._release_stale_claims(waiting.id)
        log.warning(
            "courier %s still unsettled after %d rounds: left for their next update", courier_id, _ROUNDS
        )
        return []

    async def may_go_off_duty(self, courier_id: str) -> None:
        """MoveNotAllowed when the courier holds a delivery they have collected (the hand-back's own
        rule, tried on a copy: nothing is written)."""
        courier = await self.s.couriers.get(courier_id)
        if courier is None or courier.delivery_id is None:
            return
        delivery = await self.s.deliveries.get(courier.delivery_id)
        if delivery is not None:
            domain.hand_back(delivery.model_copy(deep=True), courier_id, utc_now())

    async def hand_back(self, courier_id: str, cause: Envelope | None) -> str | None:
        """A courier stored off duty gives back the delivery they hold and have not collected (see
        above; MoveNotAllowed once collected). The delivery to dispatch again, if any."""
        courier = await self.s.couriers.get(courier_id)
        if courier is None or courier.delivery_id is None:
            return None
        delivery_id = courier.delivery_id
        if await self.s.deliveries.get(delivery_id) is None:
            return delivery_id  # a claim on nothing: its dispatch releases it
        now = utc_now()
        await self.service.change(
            self.s.deliveries,
            delivery_id,
            lambda d: domain.hand_back(d, courier_id, now),
            cause=cause,
            correlation_id=delivery_id,
            at=now,
        )
        return delivery_id

    async def _waiting_within_reach(self, courier: Courier) -> Delivery | None:
        offset, page = 0, 50
        while True:
            waiting = await store.waiting_deliveries(self.s, limit=page, offset=offset)
            found = domain.first_within_reach(courier, waiting, self.rules)
            if found is not None or len(waiting) < page:
                return found
            offset += page

    async def _claim(self, courier_id: str, delivery_id: str) -> bool:
        """Step 1: the courier, if still idle, is taken for this delivery."""
        try:
            await self.service.change(
                self.s.couriers, courier_id, lambda c: domain.claim(c, delivery_id), cause=None
            )
        except CourierNotFree:
            return False
        return True

    async def _assign(self, delivery_id: str, courier_id: str) -> bool:
        """Step 2: the delivery, if still waiting, goes to the courier whose claim names it."""
        courier = await self.s.couriers.get(courier_id)
        if courier is None or courier.delivery_id != delivery_id:
            return False
        now = utc_now()
        try:
            await self.service.change(
                self.s.deliveries,
                delivery_id,
                lambda d: domain.assign(d, courier, self.rules, now),
                cause=None,
                correlation_id=delivery_id,
                at=now,
            )
        except DeliveryTaken:
            return False
        return True

    async def _release(self, courier_id: str, delivery_id: str) -> None:
        now = utc_now()
        await self.service.change(
            self.s.couriers, courier_id, lambda c: domain.release(c, delivery_id, now), cause=None
        )

    async def _release_stale_claims(self, delivery_id: str) -> list[str]:
        """Free every courier whose claim on this delivery is over; the couriers freed."""
        delivery = await self.s.deliveries.get(delivery_id)
        freed = []
        for courier in await store.claiming(self.s, delivery_id):
            if domain.claim_released(delivery, courier.id):
                await self._release(courier.id, delivery_id)
                freed.append(courier.id)
        return freed
