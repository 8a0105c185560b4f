"""Users and roles: who may do what. No I/O."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal
from uuid import NAMESPACE_URL, uuid5

from pydantic import BaseModel

Role = Literal["patient", "pharmacist", "courier", "admin"]
ROLES: tuple[Role, ...] = ("patient", "pharmacist", "courier", "admin")
# Who may see any patient's prescriptions and orders: pharmacists dispense them, admins support them.
STAFF: frozenset[Role] = frozenset({"pharmacist", "admin"})
# Who may see any patient's payments: only admins. A pharmacist learns "paid" from the order's status.
PAYMENT_READERS: frozenset[Role] = frozenset({"admin"})
# Who may see the orders waiting for delivery, without their medication lines or the patient's name.
DISPATCHERS: frozenset[Role] = frozenset({"courier", "pharmacist", "admin"})

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


class WeakPassword(Exception):
    """The password would be easy to guess."""


class User(BaseModel):
    id: str
    email: str
    full_name: str
    role: Role
    password_hash: str
    created_at: datetime

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF


def check_password_policy(password: str, email: str) -> None:
    """Length 12 to 128 (NIST 800-63B: length over composition rules), and not the email itself."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().casefold() in {email.casefold(), email.split("@")[0].casefold()}:
        raise WeakPassword("the password must not be the email address")


class Forbidden(Exception):
    """The user's role does not allow this."""


def owner_scope(user: User, requested_user_id: str | None, *, readers: frozenset[Role] = STAFF) -> str | None:
    """Whose records a request may reach: a patient only their own; `readers` anyone's, or everyone's.

    Any other role (a courier) reaches none: least privilege, not "its own, which happen to be none".
    """
    if user.role in readers:
        return requested_user_id
    if user.role != "patient":
        raise Forbidden(f"the role {user.role} cannot see these records")
    if requested_user_id not in (None, user.id):
        raise Forbidden("patients can only see their own records")
    return user.id


def keyed_request_id(user_id: str, idempotency_key: str) -> str:
    """The request id of a write sent with an Idempotency-Key: a retry is the same request, so the
    service creates nothing new. Scoped to the user: two users choosing the same key never meet."""
    return uuid5(NAMESPACE_URL, "pharmacy:idempotency:" + json.dumps([user_id, idempotency_key])).hex
