"""Opening a pharmacy and keeping the medication catalogue on the web UI, for pharmacists and admins: so
that a platform started empty can get to a first order from a browser alone.

Every rule is the API's: these pages call `catalogue.create_pharmacy`, `create_medication`,
`update_medication` and `discontinue_medication` with the signed-in user, and show what they refuse
(pydantic's errors, inventory's refusals) beside the field it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from contracts import commands as c
from contracts.codes import SYSTEM_LABELS, Schedule
from service_runtime.errors import CommandRefused
from user_service.deps import MAX_ID_LENGTH, ResourceId, Rpc
from user_service.problems import RPC_STATUS, FieldInvalid
from user_service.routes import catalogue
from user_service.schemas import MedicationIn, MedicationOut, MedicationPatch, PharmacyIn
from user_service.web.common import PageRoute, SignedIn, StaffPage, audited_page, redirect, render
from user_service.web.pharmacist_pages import names_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CATALOGUE_PAGE = 50
# Code rows on the form: one more than the medication has, at least this many.
CODE_ROWS = 2
MAX_CODE_ROWS = 20
SCHEDULES: tuple[str, ...] = get_args(Schedule)
SCHEDULE_WORDS = {"": "Not controlled", **{s: f"Schedule {s}" for s in SCHEDULES}}
PHARMACY_WORDS = {
    "latitude": "give the latitude as a number from -90 to 90 (e.g. 51.5074)",
    "longitude": "give the longitude as a number from -180 to 180 (e.g. -0.1278)",
}


def number_or_text(value: str) -> float | str:
    """A form's number as a float for the strict schema; as typed when it is none (pydantic says why)."""
    try:
        return float(value)
    except ValueError:
        return value


# --- opening a pharmacy ----------------------------------------------------------------------------


def pharmacy_form(
    request: Request,
    web: SignedIn,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    confirmation: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "catalogue_pharmacy_new.html",
        web,
        status=status,
        errors=errors or {},
        values=values or {},
        confirmation=confirmation,
    )


@router.get("/pharmacies/new", dependencies=[audited_page("pharmacy.new")])
async def new_pharmacy(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    opened: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
) -> HTMLResponse:
    confirmation = None
    if opened is not None:  # an admin's: they are not its staff, so its stock is not theirs to show
        confirmation = (
            f"Pharmacy {opened} is open. Add a pharmacist to its staff on the Users screen "
            "so that they can stock it."
        )
    return pharmacy_form(request, web, confirmation=confirmation)


@router.post("/pharmacies/new", dependencies=[audited_page("pharmacy.create", "pharmacy_id")])
async def open_pharmacy(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    name: Annotated[str, Form(max_length=400)] = "",
    address: Annotated[str, Form(max_length=1000)] = "",
    latitude: Annotated[str, Form(max_length=40)] = "",
    longitude: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    values = {"name": name, "address": address, "latitude": latitude, "longitude": longitude}
    try:
        body = PharmacyIn.model_validate(
            {
                "name": name,
                "address": address,
                "latitude": number_or_text(latitude.strip()),
                "longitude": number_or_text(longitude.strip()),
            }
        )
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        for field, words in PHARMACY_WORDS.items():
            if field in errors:
                errors[field] = words
        return pharmacy_form(request, web, 422, errors, values)
    created = await catalogue.create_pharmacy(body, web.user, rpc, request.state.audit)
    # A pharmacist who opens one is its first staff member: its stock is on their stock page.
    if web.user.role == "pharmacist":
        return redirect(request, f"/stock?opened={created.id}")
    return redirect(request, f"/pharmacies/new?opened={created.id}")


# --- the catalogue ----------------------------------------------------------------------------------


@router.get("/catalogue", dependencies=[audited_page("medication.list")])
async def catalogue_page(
    request: Request,
    web: StaffPage,
    rpc: Rpc,
    q: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    added: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    changed: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    removed: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
) -> HTMLResponse:
    """The catalogue by name, a page at a time; only the names starting with `q` when one is given."""
    wanted = q.strip() or None
    page = c.Page(limit=CATALOGUE_PAGE, offset=offset)
    found = (await catalogue.list_medications(web.user, rpc, page, None, wanted)).items
    confirmation = None
    if added is not None or changed is not None:
        medication_id = added or changed or ""
        named = (await names_of(rpc, [medication_id])).get(medication_id)
        what = f"{named.name} {named.strength}, {named.form}," if named else f"Medication {medication_id[:8]}"
        confirmation = f"{what} was {'added to the catalogue' if added else 'changed'}."
    elif removed is not None:
        confirmation = (
            f"Medication {removed[:8]} was removed from the catalogue; orders that name it keep their record."
        )
    return render(
        request,
        "catalogue_list.html",
        web,
        medications=found,
        query=q,
        offset=offset,
        newer=max(offset - CATALOGUE_PAGE, 0) if offset else None,
        older=offset + CATALOGUE_PAGE if len(found) == CATALOGUE_PAGE else None,
        confirmation=confirmation,
        schedule_words=SCHEDULE_WORDS,
        system_labels=SYSTEM_LABELS,
    )


def code_rows(codes: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The form's code rows: those given, then empty ones to add more."""
    return [*codes, *[("", "")] * max(CODE_ROWS - len(codes), 1)][:MAX_CODE_ROWS]


def medication_form(
    request: Request,
    web: SignedIn,
    medication: MedicationOut | None,
    values: dict[str, Any],
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    """The add form (no medication) or a medication's edit form, with its errors and values."""
    systems = dict(SYSTEM_LABELS)
    for system, _ in values["codes"]:  # a system we do not name (an imported code) stays choosable
        if system and system not in systems:
            systems[system] = system
    return render(
        request,
        "catalogue_medication.html",
        web,
        status=status,
        medication=medication,
        values=values,
        rows=code_rows(values["codes"]),
        systems=systems,
        schedule_words=SCHEDULE_WORDS,
        errors=errors or {},
    )


def values_of(medication: MedicationOut) -> dict[str, Any]:
    return {
        "name": medication.name,
        "strength": medication.strength,
        "form": medication.form,
        "price": f"{medication.price:.2f}",
        "prescription_only": medication.prescription_only,
        "schedule": medication.schedule or "",
        "codes": [(code.system, code.code) for code in medication.codes],
    }


async def sent_values(request: Request) -> dict[str, Any]:
    """The medication form as sent: its fields, and its code rows (a row with neither part left out)."""
    form = await request.form()

    def text(name: str, longest: int = 200) -> str:
        value = form.get(name)
        return value[:longest] if isinstance(value, str) else ""

    systems = [str(v)[:300] for v in form.getlist("code_system")][:MAX_CODE_ROWS]
    codes = [str(v)[:100] for v in form.getlist("code")][:MAX_CODE_ROWS]
    rows = [
        (system.strip(), code.strip())
        for system, code in zip(systems, codes, strict=False)
        if system.strip() or code.strip()
    ]
    return {
        "name": text("name", 400),
        "strength": text("strength"),
        "form": text("form"),
        "price": text("price", 40),
        "prescription_only": form.get("prescription_only") == "yes",
        "schedule": text("schedule", 10),
        "codes": rows,
    }


def body_of(values: dict[str, Any]) -> dict[str, Any]:
    """The API's body for these values (MedicationIn's fields; the price as typed, a Decimal to it)."""
    return {
        "name": values["name"],
        "strength": values["strength"],
        "form": values["form"],
        "price": values["price"].strip(),
        "prescription_only": values["prescription_only"],
        "schedule": values["schedule"] or None,
        "codes": [{"system": system, "code": code} for system, code in values["codes"]],
    }


def field_of(loc: Sequence[int | str]) -> str:
    """The input a body's error is shown beside: `code-<row>`/`code_system-<row>` for a code's."""
    if loc and loc[0] == "codes":
        if len(loc) >= 3 and loc[2] == "system":
            return f"code_system-{loc[1]}"
        return f"code-{loc[1]}" if len(loc) >= 2 else "code-0"
    return str(loc[0]) if loc else "name"


def field_errors(errors: Sequence[Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in errors:
        found.setdefault(field_of(error["loc"]), str(error["msg"]).removeprefix("Value error, "))
    return found


def price_words(errors: dict[str, str]) -> dict[str, str]:
    if "price" in errors:
        errors["price"] = "give the price as an amount above 0 with at most 2 decimals (e.g. 4.20)"
    if "schedule" in errors and errors["schedule"].startswith("Input should be"):
        errors["schedule"] = "choose the schedule from the list"
    return errors


def refused_field(exc: CommandRefused | FieldInvalid) -> tuple[str, str]:
    if isinstance(exc, FieldInvalid):
        return field_of(exc.field.split(".")), f"{exc.message}."
    field = (
        field_of(tuple(int(p) if p.isdigit() else p for p in exc.field.split("."))) if exc.field else "name"
    )
    return field, f"{exc.detail}."


def said_beside(exc: CommandRefused) -> bool:
    """A refusal of what was asked (a rule, a name or code taken) is said on the form; a missing
    medication, a forbidden role or a failing service is the route class's page."""
    return exc.code in {"invalid", "conflict"} and RPC_STATUS[exc.code] < 500


@router.get("/catalogue/new", dependencies=[audited_page("medication.new")])
async def new_medication(request: Request, web: StaffPage) -> HTMLResponse:
    empty = {"prescription_only": False, "schedule": "", "codes": []}
    return medication_form(request, web, None, empty)


@router.post("/catalogue/new", dependencies=[audited_page("medication.create", "medication_id")])
async def add_medication(request: Request, web: StaffPage, rpc: Rpc) -> Response:
    values = await sent_values(request)
    try:
        body = MedicationIn.model_validate(body_of(values))
        created = await catalogue.create_medication(body, web.user, rpc, request.state.audit)
    except ValidationError as exc:
        return medication_form(request, web, None, values, 422, price_words(field_errors(exc.errors())))
    except (CommandRefused, FieldInvalid) as exc:
        if isinstance(exc, CommandRefused) and not said_beside(exc):
            raise
        field, message = refused_field(exc)
        return medication_form(request, web, None, values, 409 if field == "name" else 422, {field: message})
    return redirect(request, f"/catalogue?added={created.id}")


@router.get("/catalogue/{medication_id}", dependencies=[audited_page("medication.read", "medication_id")])
async def medication_page(
    request: Request, medication_id: ResourceId, web: StaffPage, rpc: Rpc
) -> HTMLResponse:
    medication = await catalogue.get_medication(medication_id, web.user, rpc)
    return medication_form(request, web, medication, values_of(medication))


def changes(current: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """PATCH's body: only what the form changed (a field left as it was is left out, so a colleague's
    change to it meanwhile stands); a schedule or codes sent replace the medication's."""
    body = body_of(sent)
    kept = body_of(current)
    return {name: value for name, value in body.items() if value != kept[name]}


@router.post("/catalogue/{medication_id}", dependencies=[audited_page("medication.update", "medication_id")])
async def change_medication(
    request: Request, medication_id: ResourceId, web: StaffPage, rpc: Rpc
) -> Response:
    medication = await catalogue.get_medication(medication_id, web.user, rpc)
    values = await sent_values(request)
    try:
        body = MedicationPatch.model_validate(changes(values_of(medication), values))
        await catalogue.update_medication(medication_id, body, web.user, rpc)
    except ValidationError as exc:
        errors = price_words(field_errors(exc.errors()))
        return medication_form(request, web, medication, values, 422, errors)
    except (CommandRefused, FieldInvalid) as exc:
        if isinstance(exc, CommandRefused) and not said_beside(exc):
            raise
        field, message = refused_field(exc)
        return medication_form(
            request, web, medication, values, 409 if field == "name" else 422, {field: message}
        )
    return redirect(request, f"/catalogue?changed={medication_id}")


@router.post(
    "/catalogue/{medication_id}/remove",
    dependencies=[audited_page("medication.discontinue", "medication_id")],
)
async def remove_medication(
    request: Request, medication_id: ResourceId, web: StaffPage, rpc: Rpc
) -> Response:
    """Out of the catalogue; orders that name it keep their record of it. A refusal is said beside the
    remove button."""
    try:
        await catalogue.discontinue_medication(medication_id, web.user, rpc)
    except CommandRefused as exc:
        if not said_beside(exc):
            raise
        medication = await catalogue.get_medication(medication_id, web.user, rpc)
        errors = {"remove": f"It was not removed: {exc.detail}."}
        return medication_form(request, web, medication, values_of(medication), 409, errors)
    return redirect(request, f"/catalogue?removed={medication_id}")
