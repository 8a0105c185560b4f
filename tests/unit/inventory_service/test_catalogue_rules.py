"""Catalogue rules in inventory_service/domain.py: a medication's codes and its controlled schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.base import Command
from contracts.codes import ATC, PZN, RXNORM, Code
from contracts.commands import (
    AddPharmacyStaff,
    CreateMedication,
    DiscontinueMedication,
    RemovePharmacyStaff,
    SetStock,
    UpdateMedication,
)
from inventory_service import domain
from inventory_service.domain import CatalogueRefused, CodeTaken, Medication

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
# 0,1,2,3,4,5,6 -> 0+2+6+12+20+30+42 = 112 = 10*11 + 2: the check digit is 2.
PZN_VALID = "01234562"
RAMIPRIL_ATC = Code(system=ATC, code="C09AA05")


def medication(medication_id: str, *codes: Code, discontinued: bool = False) -> Medication:
    entry = Medication(
        id=medication_id,
        name=medication_id,
        strength="5 mg",
        form="tablet",
        price_cents=500,
        prescription_only=True,
        discontinued=discontinued,
        catalogue_key=medication_id,
        created_at=NOW,
    )
    entry.recode(codes)
    return entry


def test_an_entry_with_valid_codes_and_a_schedule_passes() -> None:
    domain.check_entry(schedule="II", prescription_only=True, codes=[Code(system=PZN, code=PZN_VALID)])


def test_an_invalid_code_is_refused_naming_its_place() -> None:
    codes = [RAMIPRIL_ATC, Code(system=PZN, code="01234563")]

    with pytest.raises(CatalogueRefused) as refused:
        domain.check_entry(schedule=None, prescription_only=True, codes=codes)
    assert refused.value.field == "codes.1.code"
    assert "check digit" in refused.value.detail


def test_the_same_code_twice_on_one_entry_is_refused() -> None:
    with pytest.raises(CatalogueRefused) as refused:
        domain.check_entry(schedule=None, prescription_only=True, codes=[RAMIPRIL_ATC, RAMIPRIL_ATC])
    assert refused.value.field == "codes.1"


def test_codes_of_systems_we_do_not_check_are_taken_as_they_are() -> None:
    domain.check_entry(schedule=None, prescription_only=False, codes=[Code(system="urn:x", code="any")])


def test_a_controlled_medication_must_be_prescription_only() -> None:
    with pytest.raises(CatalogueRefused) as refused:
        domain.check_entry(schedule="IV", prescription_only=False, codes=[])
    assert refused.value.field == "schedule"


def test_a_code_already_carried_by_another_medication_is_taken() -> None:
    other = medication("ramipril-5", Code(system=PZN, code=PZN_VALID))
    codes = [Code(system=RXNORM, code="308191"), Code(system=PZN, code=PZN_VALID)]

    with pytest.raises(CodeTaken) as taken:
        domain.check_codes_free("new", codes, [other])
    assert taken.value.field == "codes.1"
    assert "PZN 01234562 is already the code of medication ramipril-5" in taken.value.detail


def test_an_atc_code_classifies_a_substance_and_is_shared_by_its_strengths() -> None:
    five_mg = medication("ramipril-5", RAMIPRIL_ATC, Code(system=PZN, code=PZN_VALID))

    domain.check_codes_free("ramipril-10", [RAMIPRIL_ATC], [five_mg])


def test_an_entry_keeps_its_own_codes_when_changed() -> None:
    itself = medication("ramipril-5", RAMIPRIL_ATC)

    domain.check_codes_free("ramipril-5", [RAMIPRIL_ATC], [itself])


def test_a_discontinued_medication_no_longer_holds_its_codes() -> None:
    gone = medication("ramipril-old", RAMIPRIL_ATC, discontinued=True)

    domain.check_codes_free("ramipril-new", [RAMIPRIL_ATC], [gone])


def test_an_entry_is_found_by_its_codes_as_system_bar_code() -> None:
    entry = medication("ramipril-5", RAMIPRIL_ATC)

    assert entry.code_keys == ["http://www.whocc.no/atc|C09AA05"]
    assert entry.view().codes == (RAMIPRIL_ATC,)


def test_a_medication_stored_before_codes_and_schedules_loads_unscheduled_and_uncoded() -> None:
    stored = {
        "id": "old",
        "name": "Aspirin",
        "strength": "500 mg",
        "form": "tablet",
        "price_cents": 199,
        "prescription_only": False,
        "catalogue_key": "aspirin|500 mg|tablet",
        "created_at": NOW,
    }

    old = Medication.model_validate(stored)

    assert (old.schedule, old.codes, old.code_keys) == (None, [], [])
    assert (old.view().schedule, old.view().codes) == (None, ())


def partition_of(command: Command) -> str:
    return str(getattr(command, command.PARTITION_BY))


def test_every_catalogue_write_queues_on_one_partition_so_one_writer_checks_codes() -> None:
    # The code check reads other entries, then writes: race-free only with no other catalogue write
    # in between, which one partition (one consumer, one key's lock) gives.
    writes = [
        CreateMedication(name="A", strength="1 mg", form="tablet", price_cents=1, prescription_only=True),
        CreateMedication(
            name="B", strength="1 mg", form="tablet", price_cents=1, prescription_only=True, request_id="r-2"
        ),
        UpdateMedication(medication_id="m-1", codes=()),
        UpdateMedication(medication_id="m-2", name="C"),
        DiscontinueMedication(medication_id="m-3"),
    ]

    assert {partition_of(w) for w in writes} == {"catalogue"}


def test_a_pharmacys_staff_changes_queue_with_its_stock_changes() -> None:
    writes = [
        SetStock(pharmacy_id="p-1", medication_id="m-1", quantity=1),
        AddPharmacyStaff(pharmacy_id="p-1", user_id="anna"),
        RemovePharmacyStaff(pharmacy_id="p-1", user_id="anna"),
    ]

    assert {partition_of(w) for w in writes} == {"p-1"}
