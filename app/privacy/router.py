from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.core.auth import Principal
from app.core.deps import SessionDep, require
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.leads.schemas import LeadOut
from app.privacy import service
from app.stakeholders.schemas import ContactOut

router = APIRouter(tags=["privacy"], route_class=DealbaseRoute, responses=COMMON_ERRORS)
ADMINS = frozenset({"admin"})
LeadReader = Annotated[Principal, Depends(require("leads:read", roles=ADMINS))]
LeadEraser = Annotated[Principal, Depends(require("leads:write", roles=ADMINS))]
ContactReader = Annotated[Principal, Depends(require("stakeholders:read", roles=ADMINS))]
ContactEraser = Annotated[Principal, Depends(require("stakeholders:write", roles=ADMINS))]
_EXPORT = (
    "Everything held about the person (admins): the record, its field history, status "
    "history, activities, signals, campaign memberships and nurture enrollments (leads) or "
    "buying-committee roles and relationships (contacts)."
)
_ERASE = (
    "Anonymise the person (admins): names become `[erased]`, e-mail, phone, title and the "
    "other identifying fields are blanked, and so are their old values in the field history, "
    "the personal keys of events about them, their signals' properties and free-text notes. "
    "Deals, amounts, dates and statuses stay, so pipeline figures and KPIs do not change. "
    "Idempotent; emits `lead.erased` / `contact.erased`."
)


@router.get(
    "/leads/{lead_id}/personal-data",
    operation_id="privacy-export-lead",
    summary="Export a lead's personal data",
    description=_EXPORT,
    responses=errors(404),
)
async def export_lead(lead_id: uuid.UUID, _: LeadReader, session: SessionDep) -> dict[str, Any]:
    return await service.export(session, "lead", lead_id)


@router.post(
    "/leads/{lead_id}/erase",
    operation_id="privacy-erase-lead",
    summary="Erase a lead's personal data",
    description=_ERASE,
    responses=errors(404),
)
async def erase_lead(lead_id: uuid.UUID, _: LeadEraser, session: SessionDep) -> LeadOut:
    return LeadOut.model_validate(await service.erase(session, "lead", lead_id))


@router.get(
    "/contacts/{contact_id}/personal-data",
    operation_id="privacy-export-contact",
    summary="Export a contact's personal data",
    description=_EXPORT,
    responses=errors(404),
)
async def export_contact(
    contact_id: uuid.UUID, _: ContactReader, session: SessionDep
) -> dict[str, Any]:
    return await service.export(session, "contact", contact_id)


@router.post(
    "/contacts/{contact_id}/erase",
    operation_id="privacy-erase-contact",
    summary="Erase a contact's personal data",
    description=_ERASE,
    responses=errors(404),
)
async def erase_contact(contact_id: uuid.UUID, _: ContactEraser, session: SessionDep) -> ContactOut:
    return ContactOut.model_validate(await service.erase(session, "contact", contact_id))
