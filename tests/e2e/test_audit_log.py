"""The audit log (issue 5): who read or changed which record, and how it ended, for admins to query."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Api, add_card, open_shop, upload

pytestmark = pytest.mark.e2e


def audit_entries(api: Api, admin: dict[str, str], **filters: Any) -> list[dict[str, Any]]:
    answer = api.http.get("/audit", headers=admin, params=filters)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def summary(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["action"], e["actor_id"], e["actor_role"], e["outcome"], e["status"]) for e in entries]


def admin_id(api: Api, admin: dict[str, str]) -> str:
    return str(api.http.get("/users/me", headers=admin).json()["id"])


def test_reads_changes_and_refusals_are_recorded_newest_first_without_personal_data(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=5)
    patient, patient_headers = api.new_patient()
    other, other_headers = api.new_patient()
    pharmacist, pharmacist_headers = api.new_patient()
    prescription = upload(api, patient_headers, shop, add_card(api, patient_headers), quantity=1)
    path = f"/prescriptions/{prescription['id']}"

    read = api.http.get(path, headers=patient_headers)
    someone_elses = api.http.get(path, headers=other_headers)
    withdrawn = api.http.delete(path, headers=patient_headers)
    granted = api.http.patch(f"/users/{pharmacist['id']}", headers=admin, json={"role": "pharmacist"})
    joined = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{pharmacist['id']}", headers=admin)
    stocked = api.http.put(
        f"/pharmacies/{shop.pharmacy_id}/stock/{shop.medication_id}",
        headers=pharmacist_headers,
        json={"quantity": 7},
    )
    refused = [api.http.get("/audit", headers=h).status_code for h in (patient_headers, pharmacist_headers)]

    assert (read.status_code, someone_elses.status_code, withdrawn.status_code) == (200, 404, 204)
    assert (granted.status_code, joined.status_code, stocked.status_code) == (200, 200, 200)
    assert refused == [403, 403]
    about_prescription = audit_entries(api, admin, subject_id=prescription["id"])
    assert summary(about_prescription) == [
        ("prescription.withdraw", patient["id"], "patient", "ok", 204),
        ("prescription.read", other["id"], "patient", "not_found", 404),
        ("prescription.read", patient["id"], "patient", "ok", 200),
        ("prescription.upload", patient["id"], "patient", "ok", 202),
    ]
    assert {e["subject_type"] for e in about_prescription} == {"prescription"}
    by_pharmacist = audit_entries(api, admin, actor_id=pharmacist["id"])
    assert summary(by_pharmacist) == [
        ("audit.read", pharmacist["id"], "pharmacist", "denied", 403),
        ("stock.set", pharmacist["id"], "pharmacist", "ok", 200),
    ]
    assert by_pharmacist[1]["subject_id"] == shop.pharmacy_id
    assert by_pharmacist[1]["details"] == {"medication_id": shop.medication_id, "quantity": "7"}
    about_pharmacist = audit_entries(api, admin, subject_id=pharmacist["id"])
    assert [(e["action"], e["actor_id"], e["outcome"], e["details"]) for e in about_pharmacist] == [
        ("user.role_change", admin_id(api, admin), "ok", {"old_role": "patient", "new_role": "pharmacist"}),
        ("auth.sign_in", None, "ok", {}),
    ]
    by_patient = audit_entries(api, admin, actor_id=patient["id"])
    assert summary(by_patient)[0] == ("audit.read", patient["id"], "patient", "denied", 403)
    everything = str([*about_prescription, *by_pharmacist, *about_pharmacist, *by_patient])
    assert patient["full_name"] not in everything
    assert patient["email"] not in everything
    assert shop.medication_id not in str(about_prescription + by_patient)  # no medication line


def test_the_log_is_filtered_by_action_and_time_and_paged(api: Api, admin: dict[str, str]) -> None:
    patient, headers = api.new_patient()
    for prescription_id in ("no-such-one", "nor-this-one"):
        traced = {**headers, "X-Request-ID": f"req-{prescription_id}"}
        assert api.http.get(f"/prescriptions/{prescription_id}", headers=traced).status_code == 404
    newest, oldest = audit_entries(api, admin, actor_id=patient["id"])
    mine = {"actor_id": patient["id"]}

    assert (newest["subject_id"], oldest["subject_id"]) == ("nor-this-one", "no-such-one")
    assert audit_entries(api, admin, **mine, since=newest["at"]) == [newest]
    assert audit_entries(api, admin, **mine, until=newest["at"]) == [oldest]
    assert audit_entries(api, admin, **mine, action="prescription.read") == [newest, oldest]
    assert audit_entries(api, admin, **mine, action="prescription.list") == []
    assert audit_entries(api, admin, **mine, limit=1, offset=1) == [oldest]
    assert (oldest["request_id"], oldest["client"]) == ("req-no-such-one", "127.0.0.1")


def test_cards_deliveries_and_sign_outs_are_recorded_too(api: Api, admin: dict[str, str]) -> None:
    patient, headers = api.new_patient()
    courier, courier_headers = api.new_patient()
    assert (
        api.http.patch(f"/users/{courier['id']}", headers=admin, json={"role": "courier"}).status_code == 200
    )
    card_id = add_card(api, headers)
    listed_cards = api.http.get("/payment-methods", headers=headers)
    deliveries = api.http.get("/deliveries", headers=courier_headers)
    signed_out = api.http.post("/auth/logout", headers=headers, json={"refresh_token": "none of mine"})

    assert (listed_cards.status_code, deliveries.status_code, signed_out.status_code) == (200, 200, 204)
    assert summary(audit_entries(api, admin, actor_id=patient["id"])) == [
        ("auth.sign_out", patient["id"], "patient", "ok", 204),
        ("payment_method.list", patient["id"], "patient", "ok", 200),
        ("payment_method.add", patient["id"], "patient", "ok", 201),
    ]
    assert (
        audit_entries(api, admin, action="payment_method.add", actor_id=patient["id"])[0]["subject_id"]
        == card_id
    )
    assert summary(audit_entries(api, admin, actor_id=courier["id"])) == [
        ("delivery.list", courier["id"], "courier", "ok", 200),
    ]
