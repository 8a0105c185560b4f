"""A scanned draft's lines on the page that confirms them: told apart by their place in the draft, so
two lines matching one medication each keep their own quantity, input and error."""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from user_service.schemas import DraftLineOut, ScanDraftOut
from user_service.web.common import templates
from user_service.web.new_order import OrderForm
from user_service.web.scan_pages import draft_lines


def line(text: str, quantity: int | None, medication_id: str | None = "ibuprofen-400") -> DraftLineOut:
    return DraftLineOut(
        text=text,
        medication_id=medication_id,
        name="Ibuprofen" if medication_id else None,
        strength="400 mg" if medication_id else None,
        form="tablet" if medication_id else None,
        quantity=quantity,
        confidence=0.9,
        flags=[],
    )


DRAFT = ScanDraftOut(
    document_id="doc-1",
    content_type="image/png",
    text="Ibuprofen 400 mg x 10\nIbuprofen 400 mg x 20\nsomething unreadable",
    lines=[line("Ibuprofen 400 mg x 10", 10), line("Ibuprofen 400 mg x 20", 20), line("??", None, None)],
    pages=1,
)


def sent(*lines: tuple[str, str]) -> OrderForm:
    """The confirmation form as sent: each kept line's place in the draft, medication and quantity."""
    fields: list[tuple[str, str | UploadFile]] = [("document_id", "doc-1"), ("form_id", "f-1")]
    for position, quantity in lines:
        fields += [("medication_id", "ibuprofen-400"), ("draft_line", position), ("quantity", quantity)]
    return OrderForm(FormData(fields))


def page(form: OrderForm | None, errors: dict[str, str] | None = None) -> str:
    values = {"form_id": "f-1", "draft": DRAFT, "lines": draft_lines(DRAFT, form), "flag_words": {}}
    return templates.get_template("patient_scan_draft.html").render(
        user=None, csrf_token="t", cards=[], errors=errors or {}, values=values
    )


def test_two_lines_of_one_medication_each_have_their_own_quantity_input() -> None:
    html = page(None)

    assert re.findall(r'id="(quantity-\d+)"[^>]*value="(\d+)"', html) == [
        ("quantity-0", "10"),
        ("quantity-1", "20"),
    ]
    assert re.findall(r'name="draft_line" value="(\d+)"', html) == ["0", "1"]


def test_the_form_sent_back_keeps_each_lines_own_quantity_and_leaves_out_what_was_left_out() -> None:
    both = draft_lines(DRAFT, sent(("0", "12"), ("1", "0")))
    second_only = draft_lines(DRAFT, sent(("1", "25")))

    assert [(d["position"], d["quantity"]) for d in both] == [(0, "12"), (1, "0"), (2, "")]
    assert [(d["position"], d["quantity"]) for d in second_only] == [(1, "25"), (2, "")]


def test_a_refused_quantity_is_said_beside_its_own_line() -> None:
    form = sent(("0", "12"), ("1", "0"))
    try:
        form.body()
    except ValidationError as exc:
        errors = form.errors(exc)
    else:
        raise AssertionError("a quantity of 0 is refused")

    assert "quantity-1" in errors
    assert "quantity-0" not in errors
    html = page(form, errors)
    assert 'id="quantity-1-error"' in html
    assert re.search(r'id="quantity-1"[^>]*aria-invalid="true"', html)
    assert not re.search(r'id="quantity-0"[^>]*aria-invalid="true"', html)
