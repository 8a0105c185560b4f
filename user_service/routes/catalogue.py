"""Pharmacies, the medication catalogue, and stock (inventory_service behind RPC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Response

from contracts import commands as c
from contracts.codes import Code
from contracts.events import Location
from service_runtime.messaging import RpcClient
from user_service.audit import Audit, audited
from user_service.deps import CurrentUser, Paging, ResourceId, Rpc, Staff
from user_service.schemas import (
    AvailabilityOut,
    MedicationIn,
    MedicationOut,
    MedicationPatch,
    Page,
    PharmacyIn,
    PharmacyOut,
    StockIn,
    StockOut,
    cents,
    codes_of,
)

router = APIRouter(tags=["pharmacies and medications"])


@router.post(
    "/pharmacies",
    status_code=201,
    response_model=PharmacyOut,
    dependencies=[audited("pharmacy.create", subject="pharmacy_id")],
)
async def create_pharmacy(body: PharmacyIn, staff: Staff, rpc: Rpc, audit: Audit) -> PharmacyOut:
    command = c.CreatePharmacy(
        name=body.name,
        address=body.address,
        location=Location(latitude=body.latitude, longitude=body.longitude),
        # A pharmacist opening a pharmacy is its first staff member, so they may stock it.
        founder_id=staff.id if staff.role == "pharmacist" else None,
    )
    created = PharmacyOut.of(await rpc.ask(command, c.PharmacyView))
    audit.subject_id = created.id
    return created


@router.get("/pharmacies", response_model=Page[PharmacyOut])
async def list_pharmacies(
    user: CurrentUser,
    rpc: Rpc,
    page: Paging,
    mine: Annotated[bool, Query(description="only the pharmacies whose staff you are on")] = False,
) -> Page[PharmacyOut]:
    command = c.ListPharmacies(page=page, staff_member=user.id if mine else None)
    found = await rpc.ask(command, list[c.PharmacyView])
    return Page(items=[PharmacyOut.of(p) for p in found], limit=page.limit, offset=page.offset)


async def pharmacies_by_id(rpc: RpcClient, ids: Sequence[str]) -> dict[str, PharmacyOut]:
    """These pharmacies by id, in one question (a pharmacy not found is left out)."""
    if not ids:
        return {}
    found = await rpc.ask(c.ListPharmacies(pharmacy_ids=tuple(dict.fromkeys(ids))), list[c.PharmacyView])
    return {p.id: PharmacyOut.of(p) for p in found}


@router.put(
    "/pharmacies/{pharmacy_id}/stock/{medication_id}",
    response_model=StockOut,
    dependencies=[audited("stock.set", subject="pharmacy_id")],
)
async def set_stock(
    pharmacy_id: ResourceId, medication_id: ResourceId, body: StockIn, staff: Staff, rpc: Rpc, audit: Audit
) -> StockOut:
    """Set how many units of a medication this pharmacy has for sale (not counting reserved units).

    Only the pharmacy's own staff or an admin may: a pharmacist of another pharmacy is refused (403).
    """
    audit.details = {"medication_id": medication_id, "quantity": str(body.quantity)}
    # Who asks travels with the command: inventory decides, against the staff as it is at that write.
    command = c.SetStock(
        pharmacy_id=pharmacy_id,
        medication_id=medication_id,
        quantity=body.quantity,
        actor_id=staff.id,
        actor_is_admin=staff.role == "admin",
    )
    return StockOut(**(await rpc.ask(command, c.StockView)).model_dump())


@router.get(
    "/pharmacies/{pharmacy_id}/stock/{medication_id}",
    response_model=StockOut,
    dependencies=[audited("stock.read", subject="pharmacy_id")],
)
async def get_stock(pharmacy_id: ResourceId, medication_id: ResourceId, staff: Staff, rpc: Rpc) -> StockOut:
    """A medication's stock at this pharmacy: for sale, held for paid orders, dispensed, and dispensed
    then brought back (never sold again). Its own staff or an admin (403 to another pharmacy's)."""
    command = c.GetStock(
        pharmacy_id=pharmacy_id,
        medication_id=medication_id,
        actor_id=staff.id,
        actor_is_admin=staff.role == "admin",
    )
    return StockOut(**(await rpc.ask(command, c.StockView)).model_dump())


@router.get(
    "/pharmacies/{pharmacy_id}/stock",
    response_model=Page[StockOut],
    dependencies=[audited("stock.list", subject="pharmacy_id")],
)
async def list_stock(pharmacy_id: ResourceId, staff: Staff, rpc: Rpc, page: Paging) -> Page[StockOut]:
    """Every medication this pharmacy has stock of, by medication id: for sale, held, sold and
    returned. Its own staff or an admin (403 to another pharmacy's)."""
    command = c.ListStock(
        pharmacy_id=pharmacy_id, actor_id=staff.id, actor_is_admin=staff.role == "admin", page=page
    )
    found = await rpc.ask(command, list[c.StockView])
    return Page(items=[StockOut(**v.model_dump()) for v in found], limit=page.limit, offset=page.offset)


@router.post(
    "/medications",
    status_code=201,
    response_model=MedicationOut,
    dependencies=[audited("medication.create", subject="medication_id")],
)
async def create_medication(body: MedicationIn, staff: Staff, rpc: Rpc, audit: Audit) -> MedicationOut:
    command = c.CreateMedication(
        name=body.name,
        strength=body.strength,
        form=body.form,
        price_cents=cents(body.price),
        prescription_only=body.prescription_only,
        schedule=body.schedule,
        codes=codes_of(body.codes),
    )
    created = MedicationOut.of(await rpc.ask(command, c.MedicationView))
    audit.subject_id = created.id
    return created


# FHIR's token search: the code system's URI, a bar, the code.
CodeFilter = Annotated[
    str | None,
    Query(
        max_length=300,
        pattern=r"^\S+\|\S+$",
        description="only the medication carrying this code, as `<system>|<code>` "
        "(e.g. `http://fhir.de/CodeSystem/ifa/pzn|01234562`)",
    ),
]


NameFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=100,
        pattern=r"\S",
        description="only the medications whose name starts with this, case aside",
    ),
]


@router.get("/medications", response_model=Page[MedicationOut])
async def list_medications(
    user: CurrentUser, rpc: Rpc, page: Paging, code: CodeFilter = None, name: NameFilter = None
) -> Page[MedicationOut]:
    """The catalogue, by name; one medication by its code; or those whose name starts with `name`."""
    wanted = None
    if code is not None:
        system, value = code.rsplit("|", 1)
        wanted = Code(system=system, code=value)
    command = c.ListMedications(page=page, code=wanted, name_prefix=name)
    found = await rpc.ask(command, list[c.MedicationView])
    return Page(items=[MedicationOut.of(m) for m in found], limit=page.limit, offset=page.offset)


@router.get("/medications/{medication_id}", response_model=MedicationOut)
async def get_medication(medication_id: ResourceId, user: CurrentUser, rpc: Rpc) -> MedicationOut:
    return MedicationOut.of(await rpc.ask(c.GetMedication(medication_id=medication_id), c.MedicationView))


@router.patch(
    "/medications/{medication_id}",
    response_model=MedicationOut,
    dependencies=[audited("medication.update", subject="medication_id")],
)
async def update_medication(
    medication_id: ResourceId, body: MedicationPatch, staff: Staff, rpc: Rpc
) -> MedicationOut:
    command = c.UpdateMedication(
        medication_id=medication_id,
        name=body.name,
        strength=body.strength,
        form=body.form,
        price_cents=None if body.price is None else cents(body.price),
        prescription_only=body.prescription_only,
        sets_schedule="schedule" in body.model_fields_set,
        schedule=body.schedule,
        codes=None if body.codes is None else codes_of(body.codes),
    )
    return MedicationOut.of(await rpc.ask(command, c.MedicationView))


@router.delete(
    "/medications/{medication_id}",
    status_code=204,
    dependencies=[audited("medication.discontinue", subject="medication_id")],
)
async def discontinue_medication(medication_id: ResourceId, staff: Staff, rpc: Rpc) -> Response:
    """Take a medication out of the catalogue. Orders that name it keep their record of it."""
    await rpc.ask(c.DiscontinueMedication(medication_id=medication_id), None)
    return Response(status_code=204)


@router.get("/medications/{medication_id}/availability", response_model=list[AvailabilityOut])
async def availability(
    medication_id: ResourceId,
    user: CurrentUser,
    rpc: Rpc,
    latitude: Annotated[float | None, Query(ge=-90, le=90)] = None,
    longitude: Annotated[float | None, Query(ge=-180, le=180)] = None,
) -> list[AvailabilityOut]:
    """Pharmacies that have it for sale; nearest first when `latitude` and `longitude` are given."""
    near = None if latitude is None or longitude is None else Location(latitude=latitude, longitude=longitude)
    found = await rpc.ask(c.GetAvailability(medication_id=medication_id, near=near), list[c.AvailabilityView])
    return [AvailabilityOut.of(a) for a in found]
