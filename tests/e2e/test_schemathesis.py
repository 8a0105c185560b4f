"""Schemathesis against the gateway's own OpenAPI document, signed in as each role (issue 5).

Every operation gets generated requests, valid and not (the examples, coverage and fuzzing phases),
as anonymous, patient, pharmacist, courier and admin, and sequences of operations chain one answer's
ids into the next request (the stateful phase) as a patient and as an admin: no answer may be a 5xx,
and every answer must be one the document describes (status, content type, body schema, headers).
The platform is its own: generated sign-ins would otherwise hold back the shared platform's client
address, and generated records would land among the others.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Backing, add_card, open_shop, started_platform, upload
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service_runtime.launcher import Platform
from user_service.app import create_app
from user_service.settings import Settings

pytestmark = pytest.mark.e2e

# Bounded so the whole run stays within a few minutes; derandomized so CI runs the same examples.
EXAMPLES_PER_OPERATION = 6
# Stateful: this many sequences per role, each of at most this many requests.
STATEFUL_SEQUENCES = 15
STATEFUL_STEPS = 6
STATEFUL_ROLES = ("patient", "admin")  # between them, every operation a signed-in user reaches
ROLES = ("anonymous", "patient", "pharmacist", "courier", "admin")
PATIENT_PASSWORD = "a long enough password"  # as Api.new_patient registers


@pytest.fixture(scope="module")
def fuzzed_platform(backing: Backing) -> Iterator[Platform]:
    env = {**os.environ, "SIGN_IN_FAILURES_PER_ADDRESS": "100000"}
    with started_platform(backing, "schemathesis", env=env) as platform:
        yield platform


@dataclass
class Roles:
    """One account per role on the fuzzed platform, and a signed-in session for each."""

    api: Api
    credentials: dict[str, tuple[str, str]]
    headers: dict[str, dict[str, str]]

    def fresh_session(self, role: str) -> dict[str, str]:
        """A sign-in of its own, for a call that may end it (POST /auth/logout)."""
        return self.api.token(*self.credentials[role]) if role in self.credentials else {}


@pytest.fixture(scope="module")
def roles(fuzzed_platform: Platform) -> Iterator[Roles]:
    api = Api(fuzzed_platform.url)
    credentials = {"admin": (ADMIN_EMAIL, ADMIN_PASSWORD)}
    headers = {"anonymous": {}, "admin": api.token(ADMIN_EMAIL, ADMIN_PASSWORD)}
    for role in ("patient", "pharmacist", "courier"):
        user, headers[role] = api.new_patient()
        credentials[role] = (user["email"], PATIENT_PASSWORD)
        if role != "patient":
            granted = api.http.patch(f"/users/{user['id']}", headers=headers["admin"], json={"role": role})
            assert granted.status_code == 200, granted.text
    # Some records to find: a shop, and a patient's prescription through its whole saga.
    shop = open_shop(api, headers["admin"], quantity=100)
    prescription = upload(api, headers["patient"], shop, add_card(api, headers["patient"]), quantity=1)
    api.wait_for_status(prescription["order_id"], headers["patient"], {"CONFIRMED"})
    yield Roles(api, credentials, headers)
    api.http.close()


# The document the gateway serves, built without starting it, so pytest knows the operations when it
# collects; test_the_served_document_is_the_one_tested checks the running gateway serves the same.
DOCUMENT = create_app(Settings()).openapi()
# Every phase, named rather than left to the defaults: the document's examples, the coverage phase
# (each boundary and each kind of wrong value the document implies), random fuzzing, and stateful
# sequences that feed one answer's ids into the next request (links schemathesis infers).
PHASES = {"examples": {}, "coverage": {}, "fuzzing": {}, "stateful": {"max-steps": STATEFUL_STEPS}}
CONFIG = SchemathesisConfig.from_dict(
    {"phases": {name: {"enabled": True, **phase} for name, phase in PHASES.items()}}
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_the_served_document_is_the_one_tested(fuzzed_platform: Platform) -> None:
    served = httpx.get(f"{fuzzed_platform.url}/api/v1/openapi.json", timeout=10)

    assert served.json() == DOCUMENT


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], role: str, roles: Roles, fuzzed_platform: Platform
) -> None:
    ends_session = case.path == "/api/v1/auth/logout"
    headers = roles.fresh_session(role) if ends_session else roles.headers[role]
    case.call_and_validate(
        base_url=fuzzed_platform.url,
        headers=headers,
        timeout=30,
        # A well-formed request may still be refused for what it means, with 422: an expired card, an
        # unknown medication, an address under a special-use domain. The document cannot say that.
        excluded_checks=[positive_data_acceptance],
    )


@pytest.mark.parametrize("role", STATEFUL_ROLES)
def test_sequences_of_operations_answer_as_documented(
    role: str, roles: Roles, fuzzed_platform: Platform
) -> None:
    """What one answer creates, the next request reads, changes or deletes: chained, as `role`."""
    answered: list[str] = []
    failed: list[str] = []

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            ends_session = case.path == "/api/v1/auth/logout"
            headers = roles.fresh_session(role) if ends_session else roles.headers[role]
            return {"base_url": fuzzed_platform.url, "headers": headers, "timeout": 30}

        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            answered.append(f"{case.method} {case.path} -> {response.status_code}")
            try:
                case.validate_response(
                    response, excluded_checks=[positive_data_acceptance], transport_kwargs=kwargs or None
                )
            except Exception as exc:
                failed.append(f"{answered[-1]}: {exc}")
                raise

    # A live API answers a sequence replayed differently (a name the first run took now answers 409),
    # so Hypothesis may find the data it drew inconsistent and stop. As in schemathesis' own runner, that
    # fails the test only when an answer broke the document.
    with contextlib.suppress(Flaky):
        Sequences.run(
            settings=settings(
                max_examples=STATEFUL_SEQUENCES,
                stateful_step_count=STATEFUL_STEPS,
                # Generate only, as schemathesis' own runner does: shrinking replays against a live API.
                phases=[Phase.generate],
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
        )
    assert not failed, failed
    assert answered, "no sequence ran"
