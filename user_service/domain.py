"""Users and roles: who may do what. No I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

Role = Literal["patient", "pharmacist", "admin"]
STAFF: frozenset[Role] = frozenset({"pharmacist", "admin"})

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


def owner_scope(user: User, requested_user_id: str | None) -> str | None:
    """Whose records a listing may show: a patient only their own; staff anyone's, or everyone's."""
    if user.is_staff:
        return requested_user_id
    if requested_user_id not in (None, user.id):
        raise Forbidden("patients can only see their own records")
    return user.id
