"""The catalogue's web forms as the API reads them: a field's error placed beside its input, and an edit
sent as PATCH's body of only what the form changed."""

from __future__ import annotations

from typing import Any

from user_service.web.catalogue_pages import body_of, changes, code_rows, field_of

PZN = "http://fhir.de/CodeSystem/ifa/pzn"


def form(**changed: Any) -> dict[str, Any]:
    return {
        "name": "Loratadine",
        "strength": "10 mg",
        "form": "tablet",
        "price": "3.90",
        "prescription_only": False,
        "schedule": "",
        "codes": [(PZN, "01234562")],
        **changed,
    }


def test_a_codes_error_is_shown_beside_its_row_and_every_other_beside_its_field() -> None:
    assert field_of(("codes", 1, "code")) == "code-1"
    assert field_of(("codes", 2, "system")) == "code_system-2"
    assert field_of(("codes", 0)) == "code-0"  # the same code twice, or taken by another entry
    assert field_of(("codes",)) == "code-0"
    assert field_of(("price",)) == "price"
    assert field_of(("schedule",)) == "schedule"


def test_an_edit_sends_only_what_it_changed() -> None:
    assert changes(form(), form()) == {}
    assert changes(form(), form(price=" 4.20 ")) == {"price": "4.20"}
    assert changes(form(schedule="IV"), form()) == {"schedule": None}  # sent as null: no schedule now
    assert changes(form(), form(codes=[])) == {"codes": []}  # every code removed
    assert changes(form(), form(name="")) == {"name": ""}  # a blank name is an error, not "keep it"


def test_a_new_medication_is_sent_whole_and_the_form_offers_a_blank_code_row() -> None:
    assert body_of(form(schedule="")) == {
        "name": "Loratadine",
        "strength": "10 mg",
        "form": "tablet",
        "price": "3.90",
        "prescription_only": False,
        "schedule": None,
        "codes": [{"system": PZN, "code": "01234562"}],
    }
    assert code_rows([]) == [("", ""), ("", "")]
    assert code_rows([(PZN, "01234562")]) == [(PZN, "01234562"), ("", "")]
