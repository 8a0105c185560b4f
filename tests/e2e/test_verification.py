"""A pharmacist verifies every prescription-only line before anything is reserved or charged: through
the gateway, with the five services running as processes."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from conftest import (
    Api,
    Shop,
    add_card,
    approve,
    new_pharmacist,
    open_shop,
    prescription_body,
    scan,
    stock_left,
)

pytestmark = pytest.mark.e2e

TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}


@pytest.fixture(scope="module")
def pharmacist(api: Api, admin: dict[str, str]) -> dict[str, str]:
    return new_pharmacist(api, admin)[1]


def rx_shop(api: Api, admin: dict[str, str], quantity: int = 10) -> Shop:
    return open_shop(api, admin, quantity=quantity, prescription_only=True)


def upload_rx(api: Api, patient: dict[str, str], shop: Shop, card: str, **details: Any) -> dict[str, Any]:
    body = {**prescription_body(shop, card, quantity=2), "document_id": scan(api, patient), **details}
    answer = api.http.post("/prescriptions", headers=patient, json=body)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def prescription(api: Api, headers: dict[str, str], prescription_id: str) -> dict[str, Any]:
    answer = api.http.get(f"/prescriptions/{prescription_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def awaiting(api: Api, patient: dict[str, str], uploaded: dict[str, Any]) -> dict[str, Any]:
    return api.wait_for_status(uploaded["order_id"], patient, {"AWAITING_VERIFICATION"})


def test_a_typed_prescription_with_its_scan_waits_for_a_pharmacist_then_is_confirmed(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    uploaded = upload_rx(
        api,
        patient,
        shop,
        add_card(api, patient),
        issued_on=str(date.today()),
        valid_until=str(date.today() + timedelta(days=90)),
        repeats_allowed=1,
        prescriber={"name": "Dr. Ada Okafor", "licence_number": "MC-204518"},
    )

    assert uploaded["status"] == "PENDING_VERIFICATION"
    assert uploaded["lines"] == [
        {"medication_id": shop.medication_id, "quantity": 2, "prescription_only": True, "schedule": None}
    ]
    assert uploaded["document_id"].startswith("doc-")
    assert uploaded["repeats_allowed"] == 1
    assert awaiting(api, patient, uploaded)["total"] is None
    assert stock_left(api, patient, shop) == 10  # nothing reserved while it waits
    queue = api.http.get("/verifications", headers=pharmacist, params={"limit": 200}).json()["items"]
    assert uploaded["id"] in [entry["prescription"]["id"] for entry in queue]

    approved = approve(api, pharmacist, uploaded["id"], note="dose checked")
    order = api.wait_for_status(uploaded["order_id"], patient, TERMINAL)

    me = api.http.get("/users/me", headers=pharmacist).json()
    assert approved["status"] == "PROCESSING"
    assert approved["verified_by"] == me["id"]
    assert [(s["decision"], s["by"], s["note"]) for s in approved["verification"]] == [
        ("approved", me["id"], "dose checked")
    ]
    assert order["status"] == "CONFIRMED"
    assert order["verified_by"] == me["id"]
    assert [h["status"] for h in order["history"]] == [
        "AWAITING_VERIFICATION",
        "PENDING",
        "STOCK_RESERVED",
        "CONFIRMED",
    ]
    assert stock_left(api, patient, shop) == 8
    queue = api.http.get("/verifications", headers=pharmacist, params={"limit": 200}).json()["items"]
    assert uploaded["id"] not in [entry["prescription"]["id"] for entry in queue]
    audit = api.http.get(
        "/audit", headers=admin, params={"action": "prescription.approve", "subject_id": uploaded["id"]}
    ).json()["items"]
    assert [(a["actor_id"], a["actor_role"], a["details"]["decision"], a["outcome"]) for a in audit] == [
        (me["id"], "pharmacist", "approved", "ok")
    ]


def test_a_rejected_prescription_rejects_its_order_with_the_reason_and_charges_nothing(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    uploaded = upload_rx(api, patient, shop, add_card(api, patient))
    awaiting(api, patient, uploaded)

    answer = api.http.post(
        f"/verifications/{uploaded['id']}/reject",
        headers=pharmacist,
        json={"reason": "PRESCRIBER_UNVERIFIED", "note": "licence number not on the register"},
    )
    order = api.wait_for_status(uploaded["order_id"], patient, TERMINAL)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["rejection_reason"]) == (
        "REJECTED",
        "PRESCRIBER_UNVERIFIED",
    )
    assert order["status"] == "REJECTED"
    assert order["history"][-1]["reason"] == (
        "prescription rejected by a pharmacist: PRESCRIBER_UNVERIFIED (licence number not on the register)"
    )
    assert stock_left(api, patient, shop) == 10
    assert api.http.get("/payments", headers=patient).json()["items"] == []
    audit = api.http.get(
        "/audit", headers=admin, params={"action": "prescription.reject", "subject_id": uploaded["id"]}
    ).json()["items"]
    assert [a["details"] for a in audit] == [{"decision": "rejected", "reason": "PRESCRIBER_UNVERIFIED"}]


def test_a_held_prescription_is_answered_by_its_patient_then_approved(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    uploaded = upload_rx(api, patient, shop, add_card(api, patient))
    awaiting(api, patient, uploaded)

    held = api.http.post(
        f"/verifications/{uploaded['id']}/hold",
        headers=pharmacist,
        json={"question": "Any penicillin allergy?"},
    )
    seen = prescription(api, patient, uploaded["id"])
    early = api.http.post(f"/verifications/{uploaded['id']}/approve", headers=pharmacist)
    other_patient = api.new_patient()[1]
    not_theirs = api.http.post(
        f"/prescriptions/{uploaded['id']}/answer", headers=other_patient, json={"answer": "No"}
    )
    answered = api.http.post(
        f"/prescriptions/{uploaded['id']}/answer", headers=patient, json={"answer": "None known"}
    )

    assert held.status_code == 200, held.text
    assert (seen["status"], seen["question"]) == ("ON_HOLD", "Any penicillin allergy?")
    assert early.status_code == 200, early.text  # a pharmacist may still approve a held one
    assert not_theirs.status_code == 404
    assert answered.status_code == 409  # approved meanwhile: no question waits any more
    order = api.wait_for_status(uploaded["order_id"], patient, TERMINAL)
    assert order["status"] == "CONFIRMED"
    assert [h["reason"] for h in order["history"] if h["status"] == "AWAITING_VERIFICATION"][1:] == [
        "the pharmacist asked you a question"
    ]


def test_a_held_prescription_goes_back_to_the_queue_when_answered(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    uploaded = upload_rx(api, patient, shop, add_card(api, patient))
    awaiting(api, patient, uploaded)

    api.http.post(
        f"/verifications/{uploaded['id']}/hold", headers=pharmacist, json={"question": "Since when?"}
    )
    queued_while_held = _queued(api, pharmacist, uploaded["id"])
    answered = api.http.post(
        f"/prescriptions/{uploaded['id']}/answer", headers=patient, json={"answer": "May"}
    )
    queued_after = _queued(api, pharmacist, uploaded["id"])
    approve(api, pharmacist, uploaded["id"])
    order = api.wait_for_status(uploaded["order_id"], patient, TERMINAL)

    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "PENDING_VERIFICATION"
    assert (queued_while_held, queued_after) == (False, True)
    assert [s["decision"] for s in prescription(api, patient, uploaded["id"])["verification"]] == [
        "held",
        "answered",
        "approved",
    ]
    assert order["status"] == "CONFIRMED"
    # The question and the answer are audited as decisions of their own, with who asked and who answered.
    trail = [
        (a["action"], a["actor_role"], a["outcome"], a["details"])
        for action in ("prescription.hold", "prescription.answer")
        for a in api.http.get(
            "/audit", headers=admin, params={"action": action, "subject_id": uploaded["id"]}
        ).json()["items"]
    ]
    assert trail == [
        ("prescription.hold", "pharmacist", "ok", {"decision": "held"}),
        ("prescription.answer", "patient", "ok", {}),
    ]


def _queued(api: Api, pharmacist: dict[str, str], prescription_id: str) -> bool:
    queue = api.http.get("/verifications", headers=pharmacist, params={"limit": 200}).json()["items"]
    return prescription_id in [entry["prescription"]["id"] for entry in queue]


def test_the_queue_shows_the_patients_earlier_prescriptions_of_the_same_medication(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    first = upload_rx(api, patient, shop, card)
    second = upload_rx(api, patient, shop, card)

    queue = api.http.get("/verifications", headers=pharmacist, params={"limit": 200}).json()["items"]
    entries = {e["prescription"]["id"]: e for e in queue}

    assert list(entries).index(first["id"]) < list(entries).index(second["id"])  # oldest first
    assert [p["id"] for p in entries[second["id"]]["earlier"]] == [first["id"]]
    assert entries[first["id"]]["earlier"] == []
    assert entries[second["id"]]["prescription"]["lines"][0]["prescription_only"] is True
    for uploaded in (first, second):
        api.http.post(f"/verifications/{uploaded['id']}/reject", headers=pharmacist, json={"reason": "OTHER"})


def test_a_pharmacist_cannot_approve_their_own_prescription(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    user, as_patient = api.new_patient()
    uploaded = upload_rx(api, as_patient, shop, add_card(api, as_patient))
    awaiting(api, as_patient, uploaded)
    promoted = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "pharmacist"})
    assert promoted.status_code == 200, promoted.text

    own = api.http.post(f"/verifications/{uploaded['id']}/approve", headers=as_patient)
    colleague = api.http.post(f"/verifications/{uploaded['id']}/approve", headers=pharmacist)

    assert own.status_code == 403
    assert own.headers["content-type"] == "application/problem+json"
    assert "own prescription" in own.json()["detail"]
    assert colleague.status_code == 200, colleague.text


def test_an_expired_prescription_cannot_be_approved(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    uploaded = upload_rx(
        api, patient, shop, add_card(api, patient), valid_until=str(date.today() - timedelta(days=1))
    )
    awaiting(api, patient, uploaded)

    answer = api.http.post(f"/verifications/{uploaded['id']}/approve", headers=pharmacist)
    rejected = api.http.post(
        f"/verifications/{uploaded['id']}/reject", headers=pharmacist, json={"reason": "EXPIRED"}
    )

    assert answer.status_code == 409
    assert "expired" in answer.json()["detail"]
    assert rejected.status_code == 200, rejected.text
    assert api.wait_for_status(uploaded["order_id"], patient, TERMINAL)["status"] == "REJECTED"
    assert stock_left(api, patient, shop) == 10


def test_a_prescription_only_line_typed_without_a_document_is_refused_naming_the_line(
    api: Api, admin: dict[str, str]
) -> None:
    rx = rx_shop(api, admin)
    otc = open_shop(api, admin, quantity=5)
    _, patient = api.new_patient()
    body = prescription_body(rx, add_card(api, patient))
    body["lines"] = [{"medication_id": otc.medication_id, "quantity": 1}, *body["lines"]]

    answer = api.http.post("/prescriptions", headers=patient, json=body)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["lines.1.medication_id"]
    assert api.http.get("/prescriptions", headers=patient).json()["items"] == []


def test_withdrawing_a_prescription_awaiting_verification_cancels_its_order(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    uploaded = upload_rx(api, patient, shop, add_card(api, patient))
    awaiting(api, patient, uploaded)

    withdrawn = api.http.delete(f"/prescriptions/{uploaded['id']}", headers=patient)
    order = api.wait_for_status(uploaded["order_id"], patient, TERMINAL)
    late = api.http.post(f"/verifications/{uploaded['id']}/approve", headers=pharmacist)

    assert withdrawn.status_code == 204
    assert order["status"] == "CANCELLED"
    assert late.status_code == 404  # withdrawn: gone from every view


def fhir_bundle(shop_name: str, quantity: int = 2) -> dict[str, Any]:
    def request(request_id: str, text: str) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:{request_id}",
            "resource": {
                "resourceType": "MedicationRequest",
                "id": request_id,
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {"text": text},
                "subject": {"reference": "Patient/pat-1"},
                "authoredOn": str(date.today()),
                "requester": {"display": "Dr. Priya Raman", "identifier": {"value": "L-55521"}},
                "dispenseRequest": {
                    "validityPeriod": {"end": str(date.today() + timedelta(days=28))},
                    "numberOfRepeatsAllowed": 2,
                    "quantity": {"value": quantity},
                },
            },
        }

    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [request("00000000-0000-4000-8000-000000000001", f"{shop_name} 500 mg capsule")],
    }


def upload_fhir(api: Api, patient: dict[str, str], shop: Shop, card: str, document: Any) -> Any:
    return api.http.post(
        "/prescriptions",
        headers={**patient, "Content-Type": "application/fhir+json"},
        params={
            "payment_method_id": card,
            "latitude": shop.latitude + 0.01,
            "longitude": shop.longitude + 0.01,
        },
        content=json.dumps(document) if not isinstance(document, str) else document,
    )


def test_a_fhir_bundle_is_taken_in_and_waits_for_a_pharmacist(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    name = api.http.get(f"/medications/{shop.medication_id}", headers=admin).json()["name"]
    _, patient = api.new_patient()

    answer = upload_fhir(api, patient, shop, add_card(api, patient), fhir_bundle(name))

    assert answer.status_code == 202, answer.text
    taken = answer.json()
    assert taken["status"] == "PENDING_VERIFICATION"
    assert taken["source"] == "fhir"
    assert [(x["medication_id"], x["quantity"]) for x in taken["lines"]] == [(shop.medication_id, 2)]
    assert (taken["repeats_allowed"], taken["prescriber"]["licence_number"]) == (2, "L-55521")
    assert "MATCHED_BY_NAME" in taken["flags"][0]["flags"]
    kept = api.http.get(f"/prescriptions/{taken['id']}/document", headers=pharmacist)
    assert kept.status_code == 200, kept.text
    assert kept.headers["content-type"].startswith("application/fhir+json")
    assert kept.json() == fhir_bundle(name)
    assert (
        api.http.get(f"/prescriptions/{taken['id']}/document", headers=api.new_patient()[1]).status_code
        == 404
    )
    awaiting(api, patient, taken)
    approve(api, pharmacist, taken["id"])
    order = api.wait_for_status(taken["order_id"], patient, TERMINAL)
    assert order["status"] == "CONFIRMED"
    # Priced at upload from the lines the import matched, as the reservation after approval was.
    assert (taken["quote"]["pharmacy_id"], taken["quote"]["total"]) == (shop.pharmacy_id, order["total"])
    assert [(q["medication_id"], q["quantity"]) for q in taken["quote"]["lines"]] == [(shop.medication_id, 2)]


def test_an_invalid_fhir_document_is_refused_naming_where(api: Api, admin: dict[str, str]) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    document = fhir_bundle("No Such Medicine")
    document["entry"][0]["resource"]["intent"] = "proposal"

    refused = upload_fhir(api, patient, shop, card, document)
    unknown = upload_fhir(api, patient, shop, card, fhir_bundle("No Such Medicine"))
    not_json = upload_fhir(api, patient, shop, card, "{not json")

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in refused.json()["errors"]] == ["/entry/0/resource/intent"]
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["/entry/0/resource/medicationCodeableConcept"]
    assert not_json.status_code == 422
    assert api.http.get("/prescriptions", headers=patient).json()["items"] == []


def test_a_fhir_upload_names_its_card_and_place_in_the_query(api: Api, admin: dict[str, str]) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()

    answer = api.http.post(
        "/prescriptions",
        headers={**patient, "Content-Type": "application/fhir+json"},
        content=json.dumps(fhir_bundle("x")),
    )
    wrong_type = api.http.post(
        "/prescriptions", headers={**patient, "Content-Type": "text/plain"}, content="Amoxicillin"
    )

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "payment_method_id"
    assert wrong_type.status_code == 415
    assert shop.medication_id


def test_refills_count_down_with_no_new_verification_and_stop(
    api: Api, admin: dict[str, str], pharmacist: dict[str, str]
) -> None:
    shop = rx_shop(api, admin)
    _, patient = api.new_patient()
    card = add_card(api, patient)
    uploaded = upload_rx(api, patient, shop, card, repeats_allowed=1)
    before = api.http.post(
        f"/prescriptions/{uploaded['id']}/refills", headers=patient, json=_refill_body(shop, card)
    )
    approve(api, pharmacist, uploaded["id"])
    api.wait_for_status(uploaded["order_id"], patient, {"CONFIRMED"})
    api.wait_until(lambda: prescription(api, patient, uploaded["id"])["status"] == "FILLED", "the first fill")

    refill = api.http.post(
        f"/prescriptions/{uploaded['id']}/refills", headers=patient, json=_refill_body(shop, card)
    )
    assert refill.status_code == 202, refill.text
    order = api.wait_for_status(refill.json()["order_id"], patient, TERMINAL)
    none_left = api.http.post(
        f"/prescriptions/{uploaded['id']}/refills", headers=patient, json=_refill_body(shop, card)
    )

    me = api.http.get("/users/me", headers=pharmacist).json()
    assert before.status_code == 409
    assert refill.json()["refills_left"] == 0
    assert order["status"] == "CONFIRMED"
    assert order["prescription_id"] == uploaded["id"]
    assert order["verified_by"] == me["id"]
    assert [h["status"] for h in order["history"]] == ["PENDING", "STOCK_RESERVED", "CONFIRMED"]
    assert none_left.status_code == 409
    assert none_left.json()["detail"] == "no refills left: 1 of 1 used"
    assert stock_left(api, patient, shop) == 6
    assert prescription(api, patient, uploaded["id"])["refill_order_ids"] == [order["id"]]


def _refill_body(shop: Shop, card: str) -> dict[str, Any]:
    return {
        "delivery_location": {"latitude": shop.latitude + 0.01, "longitude": shop.longitude + 0.01},
        "payment_method_id": card,
    }
