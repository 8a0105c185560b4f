"""The rules of verification in prescription_service/domain.py (and intake.py): each one by name."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts.codes import Code, Schedule
from contracts.commands import (
    AnswerPrescription,
    ApprovePrescription,
    CatalogueEntry,
    HoldPrescription,
    ImportFhirPrescription,
    RefillPrescription,
    RejectPrescription,
    UploadPrescription,
)
from contracts.events import (
    Location,
    PrescribedLine,
    PrescriptionAnswered,
    PrescriptionHeld,
    PrescriptionRefilled,
    PrescriptionRejected,
    PrescriptionVerified,
)
from prescription_service import domain, intake
from prescription_service.domain import Prescription, PrescriptionStatus
from prescription_service.fhir import RXNORM, FhirRefused

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOME = Location(latitude=52.52, longitude=13.405)
OTC = PrescribedLine(medication_id="ibuprofen", quantity=2)
RX = PrescribedLine(medication_id="amoxicillin", quantity=1, prescription_only=True)


def controlled(schedule: Schedule) -> PrescribedLine:
    return PrescribedLine(medication_id="oxycodone", quantity=10, prescription_only=True, schedule=schedule)


def upload(*lines: PrescribedLine, **details: Any) -> UploadPrescription:
    return UploadPrescription(
        patient_id="patient-1",
        lines=lines,
        delivery_location=HOME,
        payment_method_id="card-1",
        **details,
    )


def waiting(*lines: PrescribedLine, **details: Any) -> Prescription:
    prescription, _ = domain.upload(upload(*(lines or (RX,)), document_id="scan-1", **details), NOW)
    return prescription


def approval(by: str = "pharmacist-1", role: str = "pharmacist", **more: Any) -> ApprovePrescription:
    return ApprovePrescription(prescription_id="p", pharmacist_id=by, pharmacist_role=role, **more)


# --- at upload ------------------------------------------------------------------------------------


def test_an_over_the_counter_upload_goes_straight_on() -> None:
    prescription, _ = domain.upload(upload(OTC), NOW)

    assert prescription.status == "PROCESSING"


def test_a_prescription_only_line_waits_for_a_pharmacist() -> None:
    prescription, events = domain.upload(upload(OTC, RX, document_id="scan-1"), NOW)

    assert prescription.status == "PENDING_VERIFICATION"
    assert events[0].model_dump()["document_id"] == "scan-1"


def test_a_prescription_only_line_typed_without_a_document_is_refused_naming_the_line() -> None:
    with pytest.raises(domain.NeedsDocument) as refused:
        domain.upload(upload(OTC, RX), NOW)

    assert refused.value.line == 1


def test_a_controlled_line_needs_a_document_or_fhir_source_never_typed_alone() -> None:
    # Even if the catalogue forgot to mark it prescription-only, its schedule is enough.
    line = PrescribedLine(medication_id="diazepam", quantity=10, schedule="IV")

    with pytest.raises(domain.NeedsDocument, match="schedule IV"):
        domain.upload(upload(line), NOW)
    typed_with_scan, _ = domain.upload(upload(line, document_id="scan-1"), NOW)
    fhir, _ = domain.take_in(upload(line), "fhir", "{}", [], NOW)

    assert typed_with_scan.status == fhir.status == "PENDING_VERIFICATION"


def test_schedule_two_has_no_refills() -> None:
    with pytest.raises(domain.RefillsNotAllowed, match="schedule II"):
        domain.upload(upload(controlled("II"), document_id="s", repeats_allowed=1), NOW)

    assert waiting(controlled("II"), repeats_allowed=0).repeats_allowed == 0


@pytest.mark.parametrize("schedule", ["III", "IV"])
def test_schedules_three_and_four_have_at_most_five_refills(schedule: Schedule) -> None:
    with pytest.raises(domain.RefillsNotAllowed, match="at most 5"):
        domain.upload(upload(controlled(schedule), document_id="s", repeats_allowed=6), NOW)

    assert waiting(controlled(schedule), repeats_allowed=5).repeats_allowed == 5


# --- refills: counted after the first fill ----------------------------------------------------------


def test_repeats_allowed_counts_refills_after_the_first_fill() -> None:
    once = waiting(RX, repeats_allowed=0)
    thrice = waiting(RX, repeats_allowed=2)

    assert domain.refills_left(once, refills_made=0, today=NOW.date()) == 0
    assert domain.refills_left(thrice, refills_made=0, today=NOW.date()) == 2
    assert domain.refills_left(thrice, refills_made=2, today=NOW.date()) == 0


def test_schedule_three_and_four_refills_stop_six_months_after_issue() -> None:
    issued = date(2026, 6, 1)
    prescription = waiting(controlled("III"), repeats_allowed=5, issued_on=issued)

    assert domain.refills_left(prescription, refills_made=1, today=date(2026, 12, 1)) == 4
    assert domain.refills_left(prescription, refills_made=1, today=date(2026, 12, 2)) == 0


def test_an_unscheduled_prescription_keeps_its_refills_past_six_months() -> None:
    prescription = waiting(RX, repeats_allowed=3, issued_on=date(2026, 1, 1))

    assert domain.refills_left(prescription, refills_made=0, today=date(2026, 11, 1)) == 3


# --- deciding -----------------------------------------------------------------------------------------


def test_a_pharmacist_approves_and_the_prescription_goes_on_with_who_and_when() -> None:
    prescription = waiting()

    events = domain.approve(prescription, approval(note="dose checked"), NOW)

    assert prescription.status == "PROCESSING"
    assert (prescription.verified_by, prescription.verified_at) == ("pharmacist-1", NOW)
    assert [(s.decision, s.by, s.at, s.note) for s in prescription.verification] == [
        ("approved", "pharmacist-1", NOW, "dose checked")
    ]
    assert events == [
        PrescriptionVerified(
            prescription_id=prescription.id,
            order_id=prescription.order_id,
            patient_id="patient-1",
            pharmacist_id="pharmacist-1",
            lines=(RX,),
            note="dose checked",
        )
    ]


def test_an_approval_may_correct_the_lines() -> None:
    prescription = waiting()
    corrected = PrescribedLine(medication_id="amoxicillin-250", quantity=2, prescription_only=True)

    (verified,) = domain.approve(prescription, approval(lines=(corrected,)), NOW)

    assert prescription.lines == [corrected]
    assert isinstance(verified, PrescriptionVerified)
    assert verified.lines == (corrected,)


def test_an_expired_prescription_cannot_be_approved() -> None:
    prescription = waiting(valid_until=NOW.date() - timedelta(days=1))

    with pytest.raises(domain.PrescriptionExpired):
        domain.approve(prescription, approval(), NOW)
    assert prescription.status == "PENDING_VERIFICATION"


def test_a_prescription_valid_until_today_can_be_approved() -> None:
    prescription = waiting(valid_until=NOW.date())

    domain.approve(prescription, approval(), NOW)

    assert prescription.status == "PROCESSING"


def test_a_pharmacist_cannot_verify_their_own_prescription() -> None:
    prescription = waiting()

    with pytest.raises(domain.OwnPrescription):
        domain.approve(prescription, approval(by="patient-1"), NOW)
    with pytest.raises(domain.OwnPrescription):
        domain.reject(prescription, rejection(by="patient-1"), NOW)
    assert prescription.status == "PENDING_VERIFICATION"


@pytest.mark.parametrize("role", ["patient", "courier"])
def test_only_pharmacists_and_admins_verify(role: str) -> None:
    prescription = waiting()

    with pytest.raises(domain.NotAPharmacist):
        domain.approve(prescription, approval(role=role), NOW)
    domain.approve(prescription, approval(role="admin"), NOW)

    assert prescription.verified_by == "pharmacist-1"


def test_any_pharmacist_may_verify_a_central_team() -> None:
    for pharmacist in ("pharmacist-1", "pharmacist-2"):
        prescription = waiting()
        domain.approve(prescription, approval(by=pharmacist), NOW)
        assert prescription.verified_by == pharmacist


def test_corrected_lines_may_name_a_controlled_medication_when_the_prescription_has_a_document() -> None:
    # The pharmacist read the scan: the rules of an upload hold for the corrected lines too.
    prescription = waiting(RX)

    domain.approve(prescription, approval(lines=(controlled("III"),)), NOW)

    assert prescription.lines == [controlled("III")]


def rejection(by: str = "pharmacist-1") -> RejectPrescription:
    return RejectPrescription(
        prescription_id="p",
        pharmacist_id=by,
        pharmacist_role="pharmacist",
        reason="ILLEGIBLE",
        note="smudged",
    )


def test_a_rejection_records_the_coded_reason_and_the_note() -> None:
    prescription = waiting()

    events = domain.reject(prescription, rejection(), NOW)

    assert prescription.status == "REJECTED"
    assert prescription.rejection_reason == "ILLEGIBLE"
    assert [(s.decision, s.by, s.reason, s.note) for s in prescription.verification] == [
        ("rejected", "pharmacist-1", "ILLEGIBLE", "smudged")
    ]
    assert [type(e) for e in events] == [PrescriptionRejected]


def test_a_decided_prescription_cannot_be_decided_again() -> None:
    prescription = waiting()
    domain.reject(prescription, rejection(), NOW)

    with pytest.raises(domain.NotAwaitingVerification):
        domain.approve(prescription, approval(by="pharmacist-2"), NOW)


def test_the_same_approval_again_is_a_no_op() -> None:
    prescription = waiting()
    domain.approve(prescription, approval(), NOW)

    assert domain.approve(prescription, approval(), NOW) == []
    assert len(prescription.verification) == 1


def test_a_question_holds_the_prescription_until_the_patient_answers() -> None:
    prescription = waiting()
    hold = HoldPrescription(
        prescription_id="p",
        pharmacist_id="pharmacist-1",
        pharmacist_role="pharmacist",
        question="Since when?",
    )

    held = domain.hold(prescription, hold, NOW)
    assert (prescription.status, prescription.question) == ("ON_HOLD", "Since when?")
    with pytest.raises(domain.NotAwaitingVerification):
        domain.hold(prescription, hold, NOW)
    answered = domain.answer(
        prescription, AnswerPrescription(owner_id="patient-1", prescription_id="p", answer="A week"), NOW
    )

    assert (prescription.status, prescription.question) == ("PENDING_VERIFICATION", None)
    assert [type(e) for e in (*held, *answered)] == [PrescriptionHeld, PrescriptionAnswered]
    assert [s.decision for s in prescription.verification] == ["held", "answered"]


def test_no_answer_without_a_question() -> None:
    with pytest.raises(domain.NotAwaitingVerification):
        domain.answer(
            waiting(), AnswerPrescription(owner_id="patient-1", prescription_id="p", answer="?"), NOW
        )


def test_withdrawing_a_prescription_awaiting_verification_withdraws_it() -> None:
    prescription = waiting()

    domain.withdraw(prescription, NOW)

    assert prescription.status == "WITHDRAWN"


def test_a_cancelled_order_cancels_a_prescription_awaiting_verification() -> None:
    prescription = waiting()

    domain.follow_order(prescription, "CANCELLED")

    assert prescription.status == "CANCELLED"
    with pytest.raises(domain.NotAwaitingVerification):
        domain.approve(prescription, approval(), NOW)


def test_the_decisions_replayed_from_their_events_make_the_same_prescription() -> None:
    decided = waiting()
    restored = waiting()
    events = domain.approve(decided, approval(), NOW)

    for event in events:
        assert isinstance(event, PrescriptionVerified)
        domain.record_verified(restored, event, NOW)

    assert restored.model_dump(exclude={"id", "order_id", "fingerprint"}) == decided.model_dump(
        exclude={"id", "order_id", "fingerprint"}
    )


def test_the_fingerprint_of_an_upload_is_what_it_was_before_lines_were_classified() -> None:
    plain = upload(PrescribedLine(medication_id="ibuprofen", quantity=2))
    classified = upload(PrescribedLine(medication_id="ibuprofen", quantity=2, prescription_only=True))

    assert domain.upload_fingerprint(plain) == domain.upload_fingerprint(classified)
    assert domain.upload_fingerprint(plain) != domain.upload_fingerprint(
        upload(PrescribedLine(medication_id="ibuprofen", quantity=2), document_id="scan-2")
    )


# --- FHIR intake --------------------------------------------------------------------------------------

CATALOGUE = (
    CatalogueEntry(
        id="amox-500",
        name="Amoxicillin",
        strength="500 mg",
        form="capsule",
        prescription_only=True,
        codes=(Code(system=RXNORM, code="308191"),),
    ),
    CatalogueEntry(id="sert-50", name="Sertraline", strength="50 mg", form="tablet", prescription_only=True),
    CatalogueEntry(id="ibu-200", name="Ibuprofen", strength="200 mg", form="tablet", prescription_only=False),
)


def request(medication: dict[str, Any], quantity: int | None = 21) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "rx-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2026-11-20",
        "requester": {"display": "Dr. Ada Okafor", "identifier": {"value": "MC-204518"}},
        "dispenseRequest": {"validityPeriod": {"end": "2027-02-20"}, "numberOfRepeatsAllowed": 1},
    }
    if quantity is not None:
        body["dispenseRequest"]["quantity"] = {"value": quantity}
    return body


def fhir(document: dict[str, Any]) -> ImportFhirPrescription:
    return ImportFhirPrescription(
        patient_id="patient-1",
        document=json.dumps(document),
        delivery_location=HOME,
        payment_method_id="card-1",
        catalogue=CATALOGUE,
    )


def test_a_coded_fhir_line_matches_its_code_and_keeps_the_document_sealed_beside_it() -> None:
    command = fhir(request({"coding": [{"system": RXNORM, "code": "308191"}], "text": "Amoxi 500"}))

    prescription, (uploaded,) = intake.import_fhir(command, NOW)

    assert [(x.medication_id, x.quantity, x.prescription_only) for x in prescription.lines] == [
        ("amox-500", 21, True)
    ]
    assert prescription.status == "PENDING_VERIFICATION"
    assert (prescription.source, prescription.document) == ("fhir", command.document)
    assert (prescription.valid_until, prescription.repeats_allowed) == (date(2027, 2, 20), 1)
    assert prescription.prescriber is not None
    assert prescription.prescriber.licence_number == "MC-204518"
    assert uploaded.model_dump()["source"] == "fhir"


def test_an_uncoded_fhir_line_matches_by_name_and_strength_and_is_flagged() -> None:
    prescription, _ = intake.import_fhir(
        fhir(request({"text": "Sertraline 50 mg tablets"}, quantity=None)), NOW
    )

    assert [(x.medication_id, x.quantity) for x in prescription.lines] == [
        ("sert-50", intake.QUANTITY_UNSTATED)
    ]
    assert [set(f.flags) for f in prescription.line_flags] == [
        {"MATCHED_BY_NAME", "NO_QUANTITY", "STRENGTH_FROM_TEXT"}
    ]


def test_a_fhir_line_the_catalogue_lacks_is_refused_at_its_place() -> None:
    with pytest.raises(FhirRefused) as refused:
        intake.import_fhir(fhir(request({"text": "Sertraline 100 mg tablets"})), NOW)

    assert [(p.location, "strength" in p.message) for p in refused.value.problems] == [
        ("/medicationCodeableConcept", True)
    ]


def test_a_bundle_line_the_catalogue_lacks_is_refused_at_its_entry() -> None:
    known = request({"text": "Ibuprofen 200 mg tablet"})
    unknown = {**request({"text": "Unobtainium 5 mg tablet"}), "id": "rx-2"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:a", "resource": known},
            {"fullUrl": "urn:uuid:b", "resource": unknown},
        ],
    }

    with pytest.raises(FhirRefused) as refused:
        intake.import_fhir(fhir(bundle), NOW)

    assert [p.location for p in refused.value.problems] == ["/entry/1/resource/medicationCodeableConcept"]


# --- refills ------------------------------------------------------------------------------------------


def refill_of(prescription: Prescription, request_id: str) -> RefillPrescription:
    return RefillPrescription(
        owner_id=prescription.patient_id,
        prescription_id=prescription.id,
        delivery_location=HOME,
        payment_method_id="card-1",
        request_id=request_id,
    )


def filled(*lines: PrescribedLine, **details: Any) -> Prescription:
    prescription = waiting(*lines, **details)
    domain.approve(prescription, approval(), NOW)
    domain.follow_order(prescription, "FILLED", prescription.order_id)
    return prescription


def refilled(
    prescription: Prescription, request_id: str, outcome: PrescriptionStatus = "FILLED"
) -> list[Any]:
    """A refill asked for, and its order ended as `outcome`."""
    events = domain.refill(prescription, refill_of(prescription, request_id), NOW)
    domain.follow_order(prescription, outcome, prescription.refill_order_ids[-1])
    return list(events)


def test_refills_count_down_and_stop_when_none_are_left() -> None:
    prescription = filled(repeats_allowed=2)

    first = refilled(prescription, "r-1")
    second = refilled(prescription, "r-2")
    with pytest.raises(domain.NotRefillable, match="no refills left: 2 of 2 used"):
        domain.refill(prescription, refill_of(prescription, "r-3"), NOW)

    assert [e.refill for e in (*first, *second) if isinstance(e, PrescriptionRefilled)] == [1, 2]
    assert all(
        isinstance(e, PrescriptionRefilled) and e.verified_by == "pharmacist-1" for e in (*first, *second)
    )
    assert len(prescription.refill_order_ids) == 2
    assert prescription.order_id not in prescription.refill_order_ids


def test_a_refill_whose_order_did_not_end_filled_gives_its_repeat_back() -> None:
    prescription = filled(repeats_allowed=1)

    refilled(prescription, "r-1", "REJECTED")  # say the card was declined
    again = refilled(prescription, "r-2")

    assert [e.refill for e in again if isinstance(e, PrescriptionRefilled)] == [1]
    assert prescription.refills_made() == 1
    with pytest.raises(domain.NotRefillable, match="no refills left: 1 of 1 used"):
        domain.refill(prescription, refill_of(prescription, "r-3"), NOW)


def test_a_refill_that_came_back_undelivered_gives_its_repeat_back() -> None:
    prescription = filled(repeats_allowed=1)
    refilled(prescription, "r-1")  # confirmed: the repeat is used
    assert prescription.refills_made() == 1

    domain.follow_order(prescription, "RETURNED", prescription.refill_order_ids[-1])

    assert (prescription.status, prescription.refills_made()) == ("FILLED", 0)
    assert [e.refill for e in refilled(prescription, "r-2") if isinstance(e, PrescriptionRefilled)] == [1]


def test_a_refill_waits_until_the_last_one_has_ended() -> None:
    prescription = filled(repeats_allowed=3)
    domain.refill(prescription, refill_of(prescription, "r-1"), NOW)

    with pytest.raises(domain.NotRefillable, match="has not ended yet"):
        domain.refill(prescription, refill_of(prescription, "r-2"), NOW)
    domain.follow_order(prescription, "CANCELLED", prescription.refill_order_ids[-1])
    assert domain.refill(prescription, refill_of(prescription, "r-2"), NOW)


def test_the_same_refill_request_again_makes_no_second_order() -> None:
    prescription = filled(repeats_allowed=2)
    domain.refill(prescription, refill_of(prescription, "r-1"), NOW)

    assert domain.refill(prescription, refill_of(prescription, "r-1"), NOW) == []
    assert len(prescription.refill_order_ids) == 1


def test_a_prescription_is_refilled_only_after_its_first_fill() -> None:
    prescription = waiting(repeats_allowed=2)

    with pytest.raises(domain.NotRefillable, match="PENDING_VERIFICATION"):
        domain.refill(prescription, refill_of(prescription, "r-1"), NOW)


def test_an_expired_prescription_is_not_refilled() -> None:
    prescription = filled(repeats_allowed=2, valid_until=NOW.date())

    with pytest.raises(domain.NotRefillable, match="expired"):
        domain.refill(prescription, refill_of(prescription, "r-1"), NOW + timedelta(days=1))


def test_a_schedule_three_prescription_is_not_refilled_six_months_after_issue() -> None:
    prescription = filled(
        controlled("III"), repeats_allowed=5, issued_on=date(2026, 5, 1), valid_until=date(2027, 5, 1)
    )

    with pytest.raises(domain.NotRefillable, match="6 months after issue"):
        domain.refill(prescription, refill_of(prescription, "r-1"), NOW)


def test_a_refills_order_ending_leaves_the_prescription_filled() -> None:
    prescription = filled(repeats_allowed=1)
    (refilled,) = domain.refill(prescription, refill_of(prescription, "r-1"), NOW)
    assert isinstance(refilled, PrescriptionRefilled)

    domain.follow_order(prescription, "CANCELLED", refilled.order_id)

    assert prescription.status == "FILLED"


def test_a_prescription_cannot_be_issued_after_today() -> None:
    with pytest.raises(domain.ImplausibleDate, match="issued after today") as refused:
        domain.upload(upload(RX, document_id="scan-1", issued_on=NOW.date() + timedelta(days=1)), NOW)

    assert refused.value.field == "issued_on"


def test_a_prescription_cannot_be_valid_until_before_its_issue() -> None:
    with pytest.raises(domain.ImplausibleDate, match="before its issue") as refused:
        domain.upload(
            upload(RX, document_id="scan-1", issued_on=date(2026, 11, 1), valid_until=date(2026, 10, 1)), NOW
        )

    assert refused.value.field == "valid_until"


def test_a_prescription_naming_no_last_day_is_valid_six_months_from_its_issue() -> None:
    prescription = filled(repeats_allowed=3, issued_on=date(2026, 11, 20))

    assert domain.last_valid_day(prescription) == date(2027, 5, 20)
    assert domain.refill(prescription, refill_of(prescription, "r-1"), datetime(2027, 5, 20, tzinfo=UTC))
    domain.follow_order(prescription, "FILLED", prescription.refill_order_ids[-1])
    with pytest.raises(domain.NotRefillable, match="expired on 2027-05-20"):
        domain.refill(prescription, refill_of(prescription, "r-2"), datetime(2027, 5, 21, tzinfo=UTC))
