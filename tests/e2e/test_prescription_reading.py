"""What the web UI's prescription pages read through the API: a scan's draft read again by its
document id, and a prescription's refills left and last valid day."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import Api, add_card, new_pharmacist, open_shop, scan, upload

pytestmark = pytest.mark.e2e


def test_a_scans_draft_is_read_again_by_its_patient_and_pharmacists_only(
    api: Api, admin: dict[str, str]
) -> None:
    _, patient = api.new_patient()
    _, stranger = api.new_patient()
    _, pharmacist = new_pharmacist(api, admin)
    document_id = scan(api, patient)

    mine = api.http.get(f"/documents/{document_id}/draft", headers=patient)

    assert mine.status_code == 200, mine.text
    assert (mine.json()["document_id"], mine.json()["lines"], mine.json()["pages"]) == (document_id, [], 1)
    assert api.http.get(f"/documents/{document_id}/draft", headers=pharmacist).status_code == 200
    assert api.http.get(f"/documents/{document_id}/draft", headers=stranger).status_code == 404
    assert api.http.get("/documents/no-such-document/draft", headers=patient).status_code == 404


def test_a_prescription_says_its_refills_left_and_its_last_valid_day(api: Api, admin: dict[str, str]) -> None:
    shop = open_shop(api, admin, quantity=10)
    _, patient = api.new_patient()
    uploaded = upload(api, patient, shop, add_card(api, patient), quantity=1)

    one = api.http.get(f"/prescriptions/{uploaded['id']}", headers=patient).json()
    [listed] = [
        p
        for p in api.http.get("/prescriptions", headers=patient).json()["items"]
        if p["id"] == uploaded["id"]
    ]

    assert one["refills_left"] == 0  # none asked for
    assert date.fromisoformat(one["last_valid_day"]) > date.today()
    assert (listed["refills_left"], listed["last_valid_day"]) == (one["refills_left"], one["last_valid_day"])
