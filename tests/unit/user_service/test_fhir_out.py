"""An order as FHIR R4 (user_service/fhir_out.py): a Bundle of MedicationDispense, read back by the
same R4B models, with the status following the order. Pure: no broker, no store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle

from contracts import commands as c
from contracts.events import Location, PrescribedLine
from user_service.fhir_out import medication_dispense

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def order(status: c.OrderStatus, *, delivered_at: datetime | None = None) -> c.OrderView:
    return c.OrderView(
        id="order-1",
        prescription_id="rx-1",
        patient_id="patient-1",
        pharmacy_id="pharmacy-1",
        status=status,
        lines=(
            PrescribedLine(medication_id="ibuprofen", quantity=2),
            PrescribedLine(medication_id="amoxicillin", quantity=1, prescription_only=True),
        ),
        total_cents=1388,
        history=(),
        created_at=AT,
        delivery_location=Location(latitude=52.52, longitude=13.405),
        dispensed_by="pharmacist-1",
        delivery=c.OrderDelivery(courier_id="courier-1", proof="NAME", delivered_at=delivered_at),
    )


def test_a_delivered_order_is_a_bundle_of_completed_dispenses_one_per_line() -> None:
    document = medication_dispense(order("DELIVERED", delivered_at=AT))

    bundle = Bundle.model_validate(document)  # what leaves reads back as R4B
    dispenses = [entry["resource"] for entry in document["entry"]]
    assert bundle.type == "collection"
    assert [d["resourceType"] for d in dispenses] == ["MedicationDispense"] * 2
    assert [d["medicationCodeableConcept"]["coding"][0]["code"] for d in dispenses] == [
        "ibuprofen",
        "amoxicillin",
    ]
    assert [d["quantity"]["value"] for d in dispenses] == [2, 1]
    first = dispenses[0]
    assert first["status"] == "completed"
    assert first["authorizingPrescription"] == [{"reference": "MedicationRequest/rx-1"}]
    assert first["performer"] == [{"actor": {"reference": "Practitioner/pharmacist-1"}}]
    assert first["subject"] == {"reference": "Patient/patient-1"}
    assert first["destination"] == {"reference": "#destination"}
    assert first["contained"][0]["position"] == {"latitude": 52.52, "longitude": 13.405}
    assert datetime.fromisoformat(first["whenHandedOver"]) == AT


@pytest.mark.parametrize(
    ("status", "fhir_status"),
    [
        ("CONFIRMED", "in-progress"),
        ("READY_FOR_PICKUP", "in-progress"),
        ("OUT_FOR_DELIVERY", "in-progress"),
        ("DELIVERY_FAILED", "in-progress"),
        ("RETURNED", "stopped"),
        ("CANCELLED", "cancelled"),
        ("REJECTED", "declined"),
    ],
)
def test_until_it_is_handed_over_it_is_in_progress(status: c.OrderStatus, fhir_status: str) -> None:
    document = medication_dispense(order(status))

    statuses = {entry["resource"]["status"] for entry in document["entry"]}
    assert statuses == {fhir_status}
    assert all("whenHandedOver" not in entry["resource"] for entry in document["entry"])
