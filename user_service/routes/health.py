"""Aggregate health: the gateway, its store, and every back-end service over the broker."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from contracts.topology import COMMANDS
from user_service.deps import Rpc

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, rpc: Rpc) -> JSONResponse:
    """200 when every service answers a ping over RabbitMQ and the gateway's store answers; 503 otherwise."""
    services = sorted(COMMANDS)
    answers = await asyncio.gather(*(rpc.ping(s) for s in services))
    checks = {s: "up" if ok else "down" for s, ok in zip(services, answers, strict=True)}
    try:
        await request.app.state.db.command("ping")
        checks["store"] = "up"
    except Exception:
        checks["store"] = "down"
    healthy = all(v == "up" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status_code=200 if healthy else 503
    )
