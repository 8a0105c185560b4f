"""An order as FHIR R4: a Bundle of MedicationDispense, one per line. No I/O.

Built with fhir.resources' R4B models (its default models are R5), so what leaves is validated R4B.
A MedicationDispense is about one medication, and an order may hold several: the answer is always a
`collection` Bundle, one entry per line, all sharing the order's status, performer, destination and
hand-over time.
"""

from __future__ import annotations

from typing import Any

from contracts import commands as c

# Where the order is, in MedicationDispense's status value set: `in-progress` until it is handed over.
STATUS: dict[c.OrderStatus, str] = {
    "DELIVERED": "completed",
    "CANCELLED": "cancelled",
    "REJECTED": "declined",
    "RETURNED": "stopped",
}
# The platform's own identifiers, as FHIR systems.
ORDER_SYSTEM = "urn:pharmacy:order"
MEDICATION_SYSTEM = "urn:pharmacy:medication"


def medication_dispense(order: c.OrderView) -> dict[str, Any]:
    """The order as a validated R4B Bundle of MedicationDispense, as JSON."""
    # fhir.resources is a heavy import: kept off the gateway's start-up, paid on the first request.
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.medicationdispense import MedicationDispense

    destination = None
    if order.delivery_location is not None:
        destination = {
            "resourceType": "Location",
            "id": "destination",
            "position": {
                "latitude": order.delivery_location.latitude,
                "longitude": order.delivery_location.longitude,
            },
        }
    handed_over = order.delivery.delivered_at if order.delivery else None
    entries = []
    for n, line in enumerate(order.lines, start=1):
        dispense: dict[str, Any] = {
            "resourceType": "MedicationDispense",
            "id": f"{order.id}-{n}",
            "identifier": [{"system": ORDER_SYSTEM, "value": f"{order.id}/{n}"}],
            "status": STATUS.get(order.status, "in-progress"),
            "medicationCodeableConcept": {
                "coding": [{"system": MEDICATION_SYSTEM, "code": line.medication_id}],
                "text": line.medication_id,
            },
            "subject": {"reference": f"Patient/{order.patient_id}"},
            "authorizingPrescription": [{"reference": f"MedicationRequest/{order.prescription_id}"}],
            "quantity": {"value": line.quantity},
        }
        if order.dispensed_by is not None:
            dispense["performer"] = [{"actor": {"reference": f"Practitioner/{order.dispensed_by}"}}]
        if order.pharmacy_id is not None:
            dispense["location"] = {"reference": f"Location/{order.pharmacy_id}"}
        if destination is not None:
            dispense["contained"] = [destination]
            dispense["destination"] = {"reference": "#destination"}
        if handed_over is not None:
            dispense["whenHandedOver"] = handed_over.isoformat()
        entries.append({"resource": MedicationDispense.model_validate(dispense)})
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
    return dict(bundle.model_dump(mode="json", exclude_none=True))
