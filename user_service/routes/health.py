"""Aggregate health: the gateway, its store, and every back-end service over the broker."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from contracts.topology import ANSWERS
from user_service.deps import Rpc

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, rpc: Rpc) -> JSONResponse:
    """200 when every service is ready and so is the gateway (its broker connection and store); else 503.

    A service (and the journal's process, which answers the operator's screens) is pinged over
    RabbitMQ and answers with its readiness (whether it reaches its store): `checks` says up,
    "not ready" or down (no answer) for each, `services` what each one reported.
    """
    report = await platform_health(request, rpc)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


async def platform_health(request: Request, rpc: Rpc) -> dict[str, Any]:
    """What GET /health answers, for the operator's health page too."""
    services = sorted(ANSWERS)
    reports = await asyncio.gather(*(rpc.readiness(s) for s in services))
    gateway = await request.app.state.readiness.report()
    checks = {s: _state(report) for s, report in zip(services, reports, strict=True)}
    checks.update(gateway["checks"])
    healthy = all(v == "up" for v in checks.values())
    return {
        "status": "ok" if healthy else "degraded",
        "checks": checks,
        "services": {
            s: report or {"status": "down", "detail": "no answer over RabbitMQ"}
            for s, report in zip(services, reports, strict=True)
        },
    }


def _state(report: dict[str, Any] | None) -> str:
    if report is None:
        return "down"
    # A service that predates readiness in its ping answers only its name: answering is all it says.
    return "up" if report.get("status", "ready") == "ready" else "not ready"


@router.get("/health/live")
async def live() -> dict[str, str]:
    """200 while the gateway's process answers at all."""
    return {"service": "user_service", "status": "alive"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """200 when the gateway reaches the broker and its store; 503 naming the check that failed."""
    report = await request.app.state.readiness.report()
    return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)
