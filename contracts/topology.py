"""Who listens to what, and who answers which command: the routing table of the whole platform.

Every service declares the whole table at start-up, so services can start in any order without an
event being published before the queue that should hold it exists.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts import commands as c
from contracts import documents as d
from contracts import events as e
from contracts.base import Command, Event

EVENTS_EXCHANGE = "events"
DEAD_LETTER_EXCHANGE = "dead-letters"

SUBSCRIPTIONS: Mapping[str, tuple[type[Event], ...]] = {
    "order_service": (
        e.PrescriptionUploaded,
        e.PrescriptionWithdrawn,
        e.StockReserved,
        e.StockReservationFailed,
        e.PaymentApproved,
        e.PaymentDeclined,
        e.PaymentRefunded,
        e.ReservationExpired,
        e.PrescriptionVerified,
        e.PrescriptionRejected,
        e.PrescriptionHeld,
        e.PrescriptionAnswered,
        e.PrescriptionRefilled,
        e.OrderDispensed,
        e.DeliveryAssigned,
        e.DeliveryUnassigned,
        e.DeliveryPickedUp,
        e.DeliveryCompleted,
        e.DeliveryAttemptFailed,
        e.DeliveryReturned,
        e.PaymentCaptured,
    ),
    # A Timer (ReservationDeadline) is bound to the service's timer queue, not to its event queue.
    "inventory_service": (
        e.OrderCreated,
        e.PaymentApproved,
        e.PaymentDeclined,
        e.OrderCancelled,
        e.ReservationDeadline,
        e.DeliveryReturned,
        # Its own dispensing: the sale follows the decision (see inventory_service/handlers.py).
        e.OrderDispensed,
    ),
    "payment_service": (e.StockReserved, e.OrderCancelled, e.DeliveryPickedUp, e.DeliveryReturned),
    "prescription_service": (
        e.OrderCreated,
        e.OrderConfirmed,
        e.OrderRejected,
        e.OrderCancelled,
        e.OrderReturned,
    ),
    # Its own hand-overs, returns and hand-backs too: each frees its courier, and its own CourierFree
    # settles a courier who came free, also when the write that did it lost its follow-up (see
    # delivery_service/handlers.py).
    "delivery_service": (
        e.OrderReadyForPickup,
        e.OrderCancelled,
        e.DeliveryCompleted,
        e.DeliveryReturned,
        e.DeliveryUnassigned,
        e.CourierFree,
    ),
}

# Who publishes each event: every event has exactly one publisher, the service whose domain creates it.
PUBLISHES: Mapping[str, tuple[type[Event], ...]] = {
    "prescription_service": (
        e.PrescriptionUploaded,
        e.PrescriptionWithdrawn,
        e.PrescriptionVerified,
        e.PrescriptionRejected,
        e.PrescriptionHeld,
        e.PrescriptionAnswered,
        e.PrescriptionRefilled,
    ),
    "order_service": (
        e.OrderCreated,
        e.OrderConfirmed,
        e.OrderRejected,
        e.OrderCancelled,
        e.OrderReadyForPickup,
        e.OrderReturned,
    ),
    # ReservationDeadline is inventory's timer to itself: it comes back on its own timer queue.
    "inventory_service": (
        e.StockReserved,
        e.StockReservationFailed,
        e.ReservationDeadline,
        e.ReservationExpired,
        e.PharmacyStaffAdded,
        e.PharmacyStaffRemoved,
        e.OrderDispensed,
    ),
    "payment_service": (
        e.PaymentApproved,
        e.PaymentDeclined,
        e.PaymentRefunded,
        e.PaymentCaptured,
        e.PaymentVoided,
    ),
    "delivery_service": (
        e.DeliveryAssigned,
        e.DeliveryUnassigned,
        e.DeliveryPickedUp,
        e.DeliveryCompleted,
        e.DeliveryAttemptFailed,
        e.DeliveryReturned,
        e.CourierFree,
    ),
}

# Facts no service acts on, published for the record: the journal keeps them (who was on a
# pharmacy's staff, when, added by whom; an authorisation released, never charged). Every service
# declares the journal's queue bound to them, so they are routable (published mandatory) before the
# archiver first starts, and wait there for it.
JOURNALLED_ONLY: tuple[type[Event], ...] = (e.PharmacyStaffAdded, e.PharmacyStaffRemoved, e.PaymentVoided)

# A service whose database is lost is rebuilt by replaying the journal into it (`pharmacy-ops rebuild`):
# the events it subscribes to, and these of its own. They record what it decided on a command (an upload,
# a withdrawal, a patient's cancel), which no other event carries. A service missing here keeps state
# that only commands bring (inventory's catalogue and stock, payment methods): restore it from a backup.
REBUILT_FROM_OWN: Mapping[str, tuple[type[Event], ...]] = {
    "prescription_service": (
        e.PrescriptionUploaded,
        e.PrescriptionWithdrawn,
        e.PrescriptionVerified,
        e.PrescriptionRejected,
        e.PrescriptionHeld,
        e.PrescriptionAnswered,
        e.PrescriptionRefilled,
    ),
    "order_service": (e.OrderCancelled,),
}

COMMANDS: Mapping[str, tuple[type[Command], ...]] = {
    "inventory_service": (
        c.Ping,
        c.CreatePharmacy,
        c.ListPharmacies,
        c.CreateMedication,
        c.UpdateMedication,
        c.GetMedication,
        c.ListMedications,
        c.QuoteOrder,
        c.DiscontinueMedication,
        c.SetStock,
        c.GetAvailability,
        c.AddPharmacyStaff,
        c.RemovePharmacyStaff,
        c.ListPharmacyStaff,
        c.DispenseOrder,
        c.ListDispensingQueue,
        c.GetStock,
        c.ListStock,
    ),
    "payment_service": (
        c.Ping,
        c.AddPaymentMethod,
        c.RemovePaymentMethod,
        c.ListPaymentMethods,
        c.GetPaymentMethod,
        c.ListPayments,
        c.GetPayment,
        c.HidePayment,
    ),
    "prescription_service": (
        c.Ping,
        c.UploadPrescription,
        c.ListPrescriptions,
        c.GetPrescription,
        c.WithdrawPrescription,
        c.ImportFhirPrescription,
        c.ApprovePrescription,
        c.RejectPrescription,
        c.HoldPrescription,
        c.AnswerPrescription,
        c.ListVerificationQueue,
        c.GetVerification,
        c.RefillPrescription,
        c.GetPrescriptionDocument,
        d.ScanDocument,
        d.GetDocument,
    ),
    "order_service": (c.Ping, c.ListOrders, c.GetOrder, c.CancelOrder),
    "delivery_service": (
        c.Ping,
        c.UpdateCourier,
        c.GetCourier,
        c.ListDeliveries,
        c.GetDelivery,
        c.GetDeliveryPin,
        c.PickUpDelivery,
        c.CompleteDelivery,
        c.FailDelivery,
    ),
}


# The journal's process (operations/journal.py) answers the operator's questions too, on its own RPC
# queue: it reads the journal's store (no other process opens it) and the dead-letter queues.
JOURNAL = "journal"
OPERATOR_COMMANDS: Mapping[str, tuple[type[Command], ...]] = {
    JOURNAL: (c.Ping, c.GetSagaTimeline, c.ListDeadLetters, c.GetDeadLetter, c.RedriveDeadLetters),
}
# Every process that answers RPCs, and what: the services' commands and the operator's.
ANSWERS: Mapping[str, tuple[type[Command], ...]] = {**COMMANDS, **OPERATOR_COMMANDS}

# Every event and write command names the aggregate it is about in this header; each service's partition
# exchange hashes it, so one aggregate's messages always reach the same partition queue, in order.
PARTITION_HEADER = "x-partition-key"


def event_queue(namespace: str, service: str) -> str:
    """A service's first partition queue; it has the name the single event queue had before partitions."""
    return f"{namespace}.{service}.events"


def partition_queue(namespace: str, service: str, partition: int) -> str:
    """One of the queues a service's events and write commands are spread over, by aggregate."""
    first = event_queue(namespace, service)
    return first if partition == 0 else f"{first}.{partition}"


def partition_exchange(namespace: str, service: str) -> str:
    """The consistent-hash exchange in front of a service's partition queues."""
    return f"{namespace}.{service}.partitions"


def timer_queue(namespace: str, service: str) -> str:
    """Where a service's timers wait until they are due; then they move to the partition of their key.

    `.timers` was the queue of the single event queue's days: it dead-letters into the first partition
    (queue arguments cannot change), so it is unbound and left to run dry (see LEGACY_TIMER_QUEUE).
    """
    return f"{namespace}.{service}.timers.v2"


def legacy_timer_queue(namespace: str, service: str) -> str:
    """The timer queue before partitions: no longer bound, its last timers still reach the first partition."""
    return f"{namespace}.{service}.timers"


def journal_queue(namespace: str) -> str:
    """Bound to every event's routing key but timers': the event journal's archiver reads it."""
    return f"{namespace}.journal"


def rpc_queue(namespace: str, service: str) -> str:
    return f"{namespace}.{service}.rpc"


def work_queue(namespace: str, service: str, name: str) -> str:
    """A queue of slow reads (Command.QUEUE), served by the service's worker for them."""
    return f"{namespace}.{service}.{name}"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"
