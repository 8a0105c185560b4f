"""What the pharmacist's screens read through the API: one prescription as the queue shows it, the
pharmacies a pharmacist staffs, and a pharmacy's whole stock (its staff and admins only)."""

from __future__ import annotations

import pytest
from conftest import Api, add_card, new_pharmacist, open_shop, prescription_body, scan, staff_of

pytestmark = pytest.mark.e2e


def test_one_prescription_is_read_as_the_queue_shows_it_by_staff_only(
    api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10, prescription_only=True)
    _, patient = api.new_patient()
    _, pharmacist = new_pharmacist(api, admin)
    card = add_card(api, patient)
    body = {**prescription_body(shop, card, quantity=2), "document_id": scan(api, patient)}
    first = api.http.post("/prescriptions", headers=patient, json=body).json()
    body = {**prescription_body(shop, card, quantity=2), "document_id": scan(api, patient)}
    second = api.http.post("/prescriptions", headers=patient, json=body).json()

    read = api.http.get(f"/verifications/{second['id']}", headers=pharmacist)
    by_patient = api.http.get(f"/verifications/{second['id']}", headers=patient)
    unknown = api.http.get("/verifications/no-such-prescription", headers=pharmacist)

    assert read.status_code == 200, read.text
    entry = read.json()
    assert entry["prescription"]["id"] == second["id"]
    assert [p["id"] for p in entry["earlier"]] == [first["id"]]
    assert entry["draft"]["document_id"] == second["document_id"]
    assert entry["prescription"]["flags"] == [{"line": 0, "flags": ["NOT_IN_DRAFT"]}]  # a blank scan
    assert by_patient.status_code == 403
    assert unknown.status_code == 404
    # Held, it leaves the queue but is still read by its id.
    held = api.http.post(
        f"/verifications/{second['id']}/hold", headers=pharmacist, json={"question": "Since when?"}
    )
    assert held.status_code == 200, held.text
    again = api.http.get(f"/verifications/{second['id']}", headers=pharmacist)
    assert (again.status_code, again.json()["prescription"]["status"]) == (200, "ON_HOLD")
    for prescription in (first, second):
        api.http.post(
            f"/verifications/{prescription['id']}/reject", headers=pharmacist, json={"reason": "OTHER"}
        )


def test_a_pharmacist_lists_the_pharmacies_they_staff_and_the_whole_stock_of_those_only(
    api: Api, admin: dict[str, str]
) -> None:
    mine, theirs = open_shop(api, admin, quantity=7), open_shop(api, admin, quantity=3)
    pharmacist = staff_of(api, admin, mine)

    listed = api.http.get("/pharmacies", headers=pharmacist, params={"mine": "true"})
    stock = api.http.get(f"/pharmacies/{mine.pharmacy_id}/stock", headers=pharmacist)
    others = api.http.get(f"/pharmacies/{theirs.pharmacy_id}/stock", headers=pharmacist)
    by_admin = api.http.get(f"/pharmacies/{theirs.pharmacy_id}/stock", headers=admin)
    _, patient = api.new_patient()
    by_patient = api.http.get(f"/pharmacies/{mine.pharmacy_id}/stock", headers=patient)

    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["items"]] == [mine.pharmacy_id]
    assert stock.status_code == 200, stock.text
    assert [(s["medication_id"], s["quantity"], s["reserved"]) for s in stock.json()["items"]] == [
        (mine.medication_id, 7, 0)
    ]
    assert others.status_code == 403
    assert others.headers["content-type"] == "application/problem+json"
    assert [s["quantity"] for s in by_admin.json()["items"]] == [3]
    assert by_patient.status_code == 403
    # Without `mine`, every pharmacy, as before.
    assert len(api.http.get("/pharmacies", headers=pharmacist).json()["items"]) >= 2
