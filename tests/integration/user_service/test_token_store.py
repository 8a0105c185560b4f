"""The refresh token store on a real store: one exchange per token, expiry, and a family's end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import uuid4

import pytest
import pytest_asyncio

# Under `mypy .` conftest resolves; checked alone, tests/integration cannot see it.
from conftest import Namespace

from service_runtime.clock import utc_now
from service_runtime.settings import RuntimeSettings
from service_runtime.store import connect
from user_service.token_store import RefreshRefused, RefreshReused, RefreshToken, TokenStore

pytestmark = pytest.mark.integration

NOW = utc_now()


@pytest_asyncio.fixture
async def tokens(namespace: Namespace) -> AsyncIterator[TokenStore]:
    settings = namespace.settings(RuntimeSettings)
    client = connect(settings)
    store = TokenStore(client[settings.mongodb_database])
    await store.ensure_indexes()
    yield store
    await client.close()


def token(family_id: str = "family-1", *, expires_in: timedelta = timedelta(days=14)) -> RefreshToken:
    return RefreshToken(
        token_hash=uuid4().hex,
        user_id="user-1",
        family_id=family_id,
        issued_at=NOW,
        expires_at=NOW + expires_in,
        access_jti=str(uuid4()),
        access_expires_at=NOW + timedelta(minutes=15),
    )


async def test_a_token_is_exchanged_once_however_many_try_at_once(tokens: TokenStore) -> None:
    kept = token()
    await tokens.add(token=kept)

    results = await asyncio.gather(
        *(tokens.claim(token_hash=kept.token_hash, now=NOW) for _ in range(10)), return_exceptions=True
    )

    assert [r for r in results if isinstance(r, RefreshToken)] == [kept]
    assert sum(isinstance(r, RefreshReused) for r in results) == 9
    assert await tokens.access_revoked(jti=kept.access_jti)  # reuse ended the family


async def test_an_expired_token_is_refused_and_forgotten_while_a_live_one_stays(tokens: TokenStore) -> None:
    expired, live = token(expires_in=timedelta(seconds=-1)), token("family-2")
    await tokens.add(token=expired)
    await tokens.add(token=live)

    with pytest.raises(RefreshRefused):
        await tokens.claim(token_hash=expired.token_hash, now=NOW)
    await tokens.remove_expired(now=NOW)

    assert await tokens.refresh_tokens.find_one({"_id": expired.token_hash}) is None
    assert await tokens.refresh_tokens.find_one({"_id": live.token_hash}) is not None


async def test_the_sweep_forgets_expired_tokens_by_itself(tokens: TokenStore) -> None:
    expired = token(expires_in=timedelta(seconds=-1))
    await tokens.add(token=expired)

    sweeping = asyncio.create_task(tokens.keep_sweeping(every=0.05))
    try:
        for _ in range(100):
            if await tokens.refresh_tokens.find_one({"_id": expired.token_hash}) is None:
                break
            await asyncio.sleep(0.05)
    finally:
        sweeping.cancel()

    assert await tokens.refresh_tokens.find_one({"_id": expired.token_hash}) is None


async def test_a_revoked_family_refuses_its_tokens_their_access_tokens_and_new_members(
    tokens: TokenStore,
) -> None:
    first, other_family = token(), token("family-2")
    await tokens.add(token=first)
    await tokens.add(token=other_family)
    await tokens.claim(token_hash=first.token_hash, now=NOW)
    second = token()
    await tokens.add(token=second)

    await tokens.revoke_family(family_id="family-1", now=NOW)

    with pytest.raises(RefreshRefused):
        await tokens.claim(token_hash=second.token_hash, now=NOW)
    with pytest.raises(RefreshRefused):
        await tokens.add(token=token())
    assert await tokens.access_revoked(jti=first.access_jti)
    assert await tokens.access_revoked(jti=second.access_jti)
    assert not await tokens.access_revoked(jti=other_family.access_jti)
    assert await tokens.claim(token_hash=other_family.token_hash, now=NOW)
