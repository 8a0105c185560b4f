"""What one request costs the gateway (issue 11): store round trips, RPCs and argon2 hashes, counted.

The gateway runs in this process, on the platform's broker, store and back-end services, with a
pymongo CommandListener on its client and a count of `RpcClient.ask` and of argon2 calls, so each
request's cost is known exactly. Counts, not timings: one more round trip on the hot path fails here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher
from conftest import Api, add_card, open_shop, prescription_body, unique
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from service_runtime.launcher import Platform
from service_runtime.messaging import RpcClient
from service_runtime.settings import RuntimeSettings
from service_runtime.store import connect
from user_service import app as gateway_app
from user_service import security
from user_service.app import create_app
from user_service.settings import Settings

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"  # as Api.new_patient registers


@dataclass
class Cost:
    """What one request made the gateway do."""

    store: Counter[str] = field(default_factory=Counter)
    rpc: Counter[str] = field(default_factory=Counter)
    argon2: int = 0

    def seen(self) -> dict[str, Any]:
        return {"store": dict(self.store), "rpc": dict(self.rpc), "argon2": self.argon2}


class Meter(CommandListener):
    """Counts, for the request in hand, every store command, every RPC and every argon2 hash or verify."""

    def __init__(self) -> None:
        self.cost = Cost()

    def started(self, event: CommandStartedEvent) -> None:
        self.cost.store[f"{event.command_name} {event.command.get(event.command_name)}"] += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


class CountedHasher(PasswordHasher):
    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.meter.cost.argon2 += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.meter.cost.argon2 += 1
        return super().verify(hash, password)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    meter: Meter

    async def cost_of(self, method: str, url: str, expect: int, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        """The request's cost, and its answer's body."""
        self.meter.cost = Cost()
        answer = await self.http.request(method, url, **kwargs)
        assert answer.status_code == expect, answer.text
        cost = self.meter.cost.seen()
        return cost, answer.json() if answer.content else None


@pytest.fixture
def meter(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Meter:
    """The platform's gateway settings in the environment, and every cost of the gateway counted."""
    for name, value in platform.env_for("user_service").items():
        monkeypatch.setenv(name, value)
    meter = Meter()

    def metered_connect(settings: RuntimeSettings) -> Any:
        return connect(settings, listeners=[meter])

    ask = RpcClient.ask

    async def counted_ask(self: RpcClient, command: Any, answer: Any, **kwargs: Any) -> Any:
        meter.cost.rpc[command.TYPE] += 1
        return await ask(self, command, answer, **kwargs)

    monkeypatch.setattr(gateway_app, "connect", metered_connect)
    monkeypatch.setattr(RpcClient, "ask", counted_ask)
    monkeypatch.setattr(security, "_hasher", CountedHasher(meter))
    return meter


@asynccontextmanager
async def gateway_here(meter: Meter, **settings: Any) -> AsyncIterator[Gateway]:
    """A second gateway process's worth: the gateway in this process, on the platform's broker and store."""
    app = create_app(Settings(**settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway/api/v1") as http:
            yield Gateway(http, meter)


def find(collection: str, n: int = 1) -> dict[str, int]:
    return {f"find {collection}": n}


def insert(collection: str, n: int = 1) -> dict[str, int]:
    return {f"insert {collection}": n}


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


# What a request needs from the store: the signed-in user (the role is read at every request, so a
# role taken away takes effect at once), and the audit entry, written before the answer leaves.
SIGNED_IN = find("users")
AUDITED = insert("audit_log")


async def test_an_upload_and_the_reads_that_follow_it_cost_what_they_need(
    meter: Meter, api: Api, admin: dict[str, str]
) -> None:
    shop = open_shop(api, admin, quantity=10)
    email = f"{unique('hot-path')}@example.com"

    # A refresh time longer than the test: the counts below do not depend on how fast it runs.
    async with gateway_here(meter, revocations_refresh_seconds=600) as gateway:
        registered, user = await gateway.cost_of(
            "POST", "/auth/register", 201, json={"email": email, "password": PASSWORD, "full_name": "Pat"}
        )
        card = add_card(api, api.token(email, PASSWORD))
        sign_in, tokens = await gateway.cost_of(
            "POST", "/auth/token", 200, data={"username": user["email"], "password": PASSWORD}
        )
        patient = bearer(tokens)
        first, _ = await gateway.cost_of("GET", "/users/me", 200, headers=patient)
        uploaded, prescription = await gateway.cost_of(
            "POST", "/prescriptions", 202, headers=patient, json=prescription_body(shop, card)
        )
        read, _ = await gateway.cost_of("GET", f"/orders/{prescription['order_id']}", 200, headers=patient)
        listed, _ = await gateway.cost_of("GET", "/orders", 200, headers=patient)
        keyed, _ = await gateway.cost_of(
            "POST",
            "/prescriptions",
            202,
            headers={**patient, "Idempotency-Key": "hot-path-1"},
            json=prescription_body(shop, card),
        )

    checks = {"GetPaymentMethod": 1, "QuoteOrder": 1}
    assert {
        "registration": registered,
        "sign-in": sign_in,
        "the process's first request": first,
        "upload": uploaded,
        "order read": read,
        "order list": listed,
        "upload with an Idempotency-Key": keyed,
    } == {
        "registration": {"store": insert("users"), "rpc": {}, "argon2": 1},
        "sign-in": {
            # The account, its and the address's failure counts (cleared on success), the new
            # refresh token; expired tokens are swept apart, and a new sign-in's family is not looked up.
            "store": {
                **find("users"),
                **find("sign_in_failures", 2),
                "delete sign_in_failures": 1,
                **insert("refresh_tokens"),
                **AUDITED,
            },
            "rpc": {},
            "argon2": 1,
        },
        # The revoked access tokens are read once, then again only when the copy is too old.
        "the process's first request": {
            "store": {**find("revoked_access_tokens"), **SIGNED_IN},
            "rpc": {},
            "argon2": 0,
        },
        "upload": {
            "store": {**SIGNED_IN, **AUDITED},
            "rpc": {**checks, "UploadPrescription": 1},
            "argon2": 0,
        },
        "order read": {"store": {**SIGNED_IN, **AUDITED}, "rpc": {"GetOrder": 1}, "argon2": 0},
        "order list": {"store": {**SIGNED_IN, **AUDITED}, "rpc": {"ListOrders": 1}, "argon2": 0},
        # The key becomes the command's request id: the gateway keeps nothing of its own for it.
        "upload with an Idempotency-Key": {
            "store": {**SIGNED_IN, **AUDITED},
            "rpc": {**checks, "UploadPrescription": 1},
            "argon2": 0,
        },
    }


async def test_a_sign_out_is_refused_at_once_here_and_within_the_refresh_time_on_another_process(
    meter: Meter, api: Api
) -> None:
    user, _ = api.new_patient()
    refresh_seconds = 1.0
    async with gateway_here(meter, revocations_refresh_seconds=refresh_seconds) as gateway:
        here = (
            await gateway.http.post("/auth/token", data={"username": user["email"], "password": PASSWORD})
        ).json()
        elsewhere = api.http.post(
            "/auth/token", data={"username": user["email"], "password": PASSWORD}
        ).json()
        assert (await gateway.http.get("/users/me", headers=bearer(here))).status_code == 200
        assert (await gateway.http.get("/users/me", headers=bearer(elsewhere))).status_code == 200

        signed_out_here = await gateway.http.post(
            "/auth/logout", headers=bearer(here), json={"refresh_token": here["refresh_token"]}
        )
        signed_out_elsewhere = api.http.post(
            "/auth/logout", headers=bearer(elsewhere), json={"refresh_token": elsewhere["refresh_token"]}
        )
        assert (signed_out_here.status_code, signed_out_elsewhere.status_code) == (204, 204)

        # Signed out on this process: refused at once. On the other: refused there at once, and here
        # once this process's copy of the revocations is `refresh_seconds` old.
        assert (await gateway.http.get("/users/me", headers=bearer(here))).status_code == 401
        assert api.http.get("/users/me", headers=bearer(elsewhere)).status_code == 401
        await asyncio.sleep(refresh_seconds)
        assert (await gateway.http.get("/users/me", headers=bearer(elsewhere))).status_code == 401
