"""Who may change a pharmacy's stock (inventory_service/domain.py): its own staff and admins, nobody else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.events import Location, PharmacyStaffAdded, PharmacyStaffRemoved
from inventory_service import domain
from inventory_service.domain import NotOnStaff, Pharmacy

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
HERE = Location(latitude=52.52, longitude=13.405)


def pharmacy(*staff: str) -> Pharmacy:
    p = Pharmacy(id="mitte", name="Mitte", address="Hauptstr. 1", location=HERE, created_at=NOW)
    p.staff = list(staff)
    return p


def test_a_pharmacist_of_the_pharmacy_changes_its_stock() -> None:
    mitte = pharmacy("anna")

    mitte.restock("ibuprofen", 12, actor_id="anna", actor_is_admin=False)

    assert mitte.available("ibuprofen") == 12


def test_a_pharmacist_of_another_pharmacy_cannot_change_its_stock() -> None:
    mitte = pharmacy("anna")
    mitte.set_available("ibuprofen", 5)

    with pytest.raises(NotOnStaff, match="only the staff of pharmacy mitte or an admin"):
        mitte.restock("ibuprofen", 0, actor_id="bruno", actor_is_admin=False)
    assert mitte.available("ibuprofen") == 5


def test_an_admin_changes_any_pharmacys_stock_without_being_on_its_staff() -> None:
    mitte = pharmacy()

    mitte.restock("ibuprofen", 3, actor_id="root", actor_is_admin=True)

    assert mitte.available("ibuprofen") == 3


def test_a_stock_change_naming_nobody_is_refused() -> None:
    # A command from a caller older than `actor_id`: refused, never taken as an admin's.
    with pytest.raises(NotOnStaff):
        pharmacy("anna").restock("ibuprofen", 1, actor_id=None, actor_is_admin=False)


def test_a_pharmacist_taken_off_the_staff_can_no_longer_change_its_stock() -> None:
    mitte = pharmacy("anna")
    mitte.remove_staff("anna", removed_by="root")

    with pytest.raises(NotOnStaff):
        mitte.restock("ibuprofen", 1, actor_id="anna", actor_is_admin=False)


def test_adding_a_pharmacist_to_the_staff_is_announced_once() -> None:
    mitte = pharmacy()

    first = mitte.add_staff("anna", added_by="root")
    again = mitte.add_staff("anna", added_by="root")

    assert first == [PharmacyStaffAdded(pharmacy_id="mitte", user_id="anna", added_by="root")]
    assert again == []
    assert mitte.staff == ["anna"]


def test_removing_a_pharmacist_from_the_staff_is_announced_once_and_keeps_the_others_in_order() -> None:
    mitte = pharmacy("anna", "bruno", "chiara")

    first = mitte.remove_staff("bruno", removed_by="root")
    again = mitte.remove_staff("bruno", removed_by="root")

    assert first == [PharmacyStaffRemoved(pharmacy_id="mitte", user_id="bruno", removed_by="root")]
    assert again == []
    assert mitte.staff == ["anna", "chiara"]


def test_a_pharmacist_who_opens_a_pharmacy_is_its_first_staff_member() -> None:
    opened, events = domain.open_pharmacy("mitte", "Mitte", "Hauptstr. 1", HERE, founder_id="anna", now=NOW)

    assert opened.staff == ["anna"]
    assert events == [PharmacyStaffAdded(pharmacy_id="mitte", user_id="anna", added_by="anna")]


def test_a_pharmacy_an_admin_opens_has_no_staff() -> None:
    opened, events = domain.open_pharmacy("mitte", "Mitte", "Hauptstr. 1", HERE, founder_id=None, now=NOW)

    assert (opened.staff, events) == ([], [])


def test_a_pharmacy_stored_before_staff_loads_with_none() -> None:
    stored = {"id": "old", "name": "Old", "address": "A", "location": HERE.model_dump(), "created_at": NOW}

    assert Pharmacy.model_validate(stored).staff == []
