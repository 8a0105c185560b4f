"""Through HTTP: pharmacists belong to pharmacies and stock only their own; medications carry codes."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from conftest import Api, open_shop

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
PZN = "http://fhir.de/CodeSystem/ifa/pzn"
ATC = "http://www.whocc.no/atc"


def pharmacist(api: Api, admin: dict[str, str]) -> tuple[str, dict[str, str]]:
    user, headers = api.new_patient()
    granted = api.http.patch(f"/users/{user['id']}", headers=admin, json={"role": "pharmacist"})
    assert granted.status_code == 200, granted.text
    return str(user["id"]), headers


def stock(api: Api, headers: dict[str, str], pharmacy_id: str, medication_id: str, quantity: int) -> Any:
    return api.http.put(
        f"/pharmacies/{pharmacy_id}/stock/{medication_id}", headers=headers, json={"quantity": quantity}
    )


def unused_pzn() -> str:
    """A valid PZN no other test's medication carries: seven random digits and their check digit."""
    while True:
        first = f"{secrets.randbelow(10**7):07d}"
        check = sum(weight * int(digit) for weight, digit in enumerate(first, start=1)) % 11
        if check != 10:
            return f"{first}{check}"


def test_only_a_pharmacys_own_staff_or_an_admin_change_its_stock(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=5)
    anna, anna_headers = pharmacist(api, admin)
    bruno, bruno_headers = pharmacist(api, admin)
    _, patient = api.new_patient()
    # Bruno opens a pharmacy of his own: he is its first staff member, not the shop's.
    own = api.http.post(
        "/pharmacies",
        headers=bruno_headers,
        json={
            "name": "Bruno's",
            "address": "4 Side St",
            "latitude": shop.latitude,
            "longitude": shop.longitude,
        },
    )
    assert own.status_code == 201, own.text

    before = stock(api, anna_headers, shop.pharmacy_id, shop.medication_id, 7)
    added = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{anna}", headers=admin)
    by_anna = stock(api, anna_headers, shop.pharmacy_id, shop.medication_id, 8)
    by_bruno = stock(api, bruno_headers, shop.pharmacy_id, shop.medication_id, 99)
    by_patient = stock(api, patient, shop.pharmacy_id, shop.medication_id, 99)
    bruno_at_his_own = stock(api, bruno_headers, own.json()["id"], shop.medication_id, 3)

    assert before.status_code == 403, before.text
    assert (added.status_code, added.json()) == (200, {"pharmacy_id": shop.pharmacy_id, "user_id": anna})
    assert (by_anna.status_code, by_anna.json()["quantity"]) == (200, 8)
    assert by_bruno.status_code == 403
    assert by_bruno.headers["content-type"] == PROBLEM
    assert (
        by_bruno.json()["detail"]
        == f"only the staff of pharmacy {shop.pharmacy_id} or an admin may change its stock"
    )
    assert by_patient.status_code == 403
    assert by_patient.headers["content-type"] == PROBLEM
    assert bruno_at_his_own.status_code == 200, bruno_at_his_own.text
    his_staff = api.http.get(f"/pharmacies/{own.json()['id']}/staff", headers=bruno_headers).json()["items"]
    assert [m["user_id"] for m in his_staff] == [bruno]
    listed = api.http.get(f"/pharmacies/{shop.pharmacy_id}/staff", headers=anna_headers)
    assert [m["user_id"] for m in listed.json()["items"]] == [anna]
    assert api.http.get(f"/pharmacies/{shop.pharmacy_id}/staff", headers=bruno_headers).status_code == 403
    availability = api.http.get(f"/medications/{shop.medication_id}/availability", headers=patient).json()
    assert {p["pharmacy_id"]: p["quantity"] for p in availability}[shop.pharmacy_id] == 8

    removed = api.http.delete(f"/pharmacies/{shop.pharmacy_id}/staff/{anna}", headers=admin)
    after = stock(api, anna_headers, shop.pharmacy_id, shop.medication_id, 1)

    assert removed.status_code == 204
    assert after.status_code == 403
    assert api.http.get(f"/pharmacies/{shop.pharmacy_id}/staff", headers=admin).json()["items"] == []


def test_only_pharmacists_join_a_staff_and_only_admins_add_them(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=1)
    patient, patient_headers = api.new_patient()
    anna, anna_headers = pharmacist(api, admin)

    a_patient = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{patient['id']}", headers=admin)
    nobody = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/no-such-user", headers=admin)
    no_pharmacy = api.http.put(f"/pharmacies/no-such-pharmacy/staff/{anna}", headers=admin)
    by_a_pharmacist = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{anna}", headers=anna_headers)
    by_a_patient = api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{anna}", headers=patient_headers)

    assert a_patient.status_code == 422
    assert a_patient.json()["errors"] == [
        {"field": "user_id", "message": "only a pharmacist joins a pharmacy's staff; this user is a patient"}
    ]
    assert (nobody.status_code, no_pharmacy.status_code) == (404, 404)
    assert (by_a_pharmacist.status_code, by_a_patient.status_code) == (403, 403)
    assert all(
        a.headers["content-type"] == PROBLEM
        for a in (a_patient, nobody, no_pharmacy, by_a_pharmacist, by_a_patient)
    )
    assert api.http.get(f"/pharmacies/{shop.pharmacy_id}/staff", headers=admin).json()["items"] == []


def test_staff_changes_are_audited(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=1)
    anna, _ = pharmacist(api, admin)

    api.http.put(f"/pharmacies/{shop.pharmacy_id}/staff/{anna}", headers=admin)
    api.http.delete(f"/pharmacies/{shop.pharmacy_id}/staff/{anna}", headers=admin)

    entries = api.http.get("/audit", headers=admin, params={"subject_id": shop.pharmacy_id}).json()["items"]
    staff_entries = [(e["action"], e["outcome"], e["details"]) for e in entries if "staff" in e["action"]]
    assert staff_entries == [
        ("pharmacy.staff_remove", "ok", {"user_id": anna}),
        ("pharmacy.staff_add", "ok", {"user_id": anna}),
    ]


def test_a_medication_shows_its_schedule_and_codes_and_is_found_by_code(
    api: Api, admin: dict[str, str]
) -> None:
    pzn = unused_pzn()
    codes = [{"system": PZN, "code": pzn}, {"system": ATC, "code": "N02AX02"}]
    body: dict[str, Any] = {
        "name": f"Tramadol {secrets.token_hex(3)}",
        "strength": "50 mg",
        "form": "capsule",
        "price": "6.80",
        "prescription_only": True,
        "schedule": "IV",
        "codes": codes,
    }

    created = api.http.post("/medications", headers=admin, json=body)
    assert created.status_code == 201, created.text
    medication_id = created.json()["id"]
    shown = api.http.get(f"/medications/{medication_id}", headers=admin).json()
    found = api.http.get("/medications", headers=admin, params={"code": f"{PZN}|{pzn}"}).json()["items"]
    cleared = api.http.patch(
        f"/medications/{medication_id}", headers=admin, json={"schedule": None, "codes": [codes[0]]}
    )
    kept = api.http.patch(f"/medications/{medication_id}", headers=admin, json={"price": "7.00"})

    assert (shown["schedule"], shown["codes"]) == ("IV", codes)
    assert [m["id"] for m in found] == [medication_id]
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["schedule"], cleared.json()["codes"]) == (None, [codes[0]])
    assert (kept.json()["schedule"], kept.json()["codes"], kept.json()["price"]) == (
        None,
        [codes[0]],
        7.0,
    )


def test_an_invalid_code_is_refused_naming_the_field_and_a_taken_one_conflicts(
    api: Api, admin: dict[str, str]
) -> None:
    pzn = unused_pzn()
    wrong_check_digit = pzn[:7] + str((int(pzn[7]) + 1) % 10)

    def body(code: str, **more: Any) -> dict[str, Any]:
        return {
            "name": f"Ramipril {secrets.token_hex(3)}",
            "strength": "5 mg",
            "form": "tablet",
            "price": "3.10",
            "prescription_only": True,
            "codes": [{"system": ATC, "code": "C09AA05"}, {"system": PZN, "code": code}],
            **more,
        }

    invalid = api.http.post("/medications", headers=admin, json=body(wrong_check_digit))
    first = api.http.post("/medications", headers=admin, json=body(pzn))
    taken = api.http.post("/medications", headers=admin, json=body(pzn))
    other = api.http.post("/medications", headers=admin, json={**body(unused_pzn()), "codes": []})
    taken_by_patch = api.http.patch(
        f"/medications/{other.json()['id']}", headers=admin, json={"codes": [{"system": PZN, "code": pzn}]}
    )
    uncontrolled = api.http.post(
        "/medications", headers=admin, json=body(unused_pzn(), schedule="II", prescription_only=False)
    )
    bad_schedule = api.http.post("/medications", headers=admin, json=body(unused_pzn(), schedule="VI"))

    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == PROBLEM
    assert [e["field"] for e in invalid.json()["errors"]] == ["codes.1.code"]
    assert "check digit" in invalid.json()["errors"][0]["message"]
    assert first.status_code == 201, first.text
    assert taken.status_code == 409
    assert taken.headers["content-type"] == PROBLEM
    # The ATC code (codes.0) classifies: another strength may share it. The PZN names one product.
    assert (
        taken.json()["detail"] == f"codes.1: PZN {pzn} is already the code of medication {first.json()['id']}"
    )
    assert taken_by_patch.status_code == 409
    assert api.http.get(f"/medications/{other.json()['id']}", headers=admin).json()["codes"] == []
    assert (uncontrolled.status_code, [e["field"] for e in uncontrolled.json()["errors"]]) == (
        422,
        ["schedule"],
    )
    assert (bad_schedule.status_code, [e["field"] for e in bad_schedule.json()["errors"]]) == (
        422,
        ["schedule"],
    )
