"""Every page of the web UI, whichever module adds it: it answers in HTML (PageRoute), and it needs a
session (so a CSRF token for anything it changes) unless it is one of the few a stranger may open."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter

from user_service import web
from user_service.web.common import PageRoute, signed_in

# Opened before anyone is signed in; their forms carry the form cookie's token instead (double submit).
ANONYMOUS = {
    ("GET", "/sign-in"),
    ("POST", "/sign-in"),
    ("GET", "/register"),
    ("POST", "/register"),
    ("GET", "/"),
}


def web_routes() -> Iterator[APIRoute]:
    for module in pkgutil.iter_modules(web.__path__):
        router = getattr(importlib.import_module(f"{web.__name__}.{module.name}"), "router", None)
        if isinstance(router, APIRouter):
            yield from (route for route in router.routes if isinstance(route, APIRoute))


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from calls(dependency)


def test_the_web_ui_has_pages_from_every_module_that_adds_some() -> None:
    paths = {route.path for route in web_routes()}
    assert {"/sign-in", "/orders/{order_id}", "/cards", "/prescriptions/new"} <= paths


def test_every_page_answers_in_html_whatever_goes_wrong() -> None:
    plain = [route.path for route in web_routes() if not isinstance(route, PageRoute)]
    assert plain == []


def test_every_page_but_the_front_door_needs_a_session() -> None:
    open_pages = [
        (method, route.path)
        for route in web_routes()
        for method in route.methods or ()
        if signed_in not in set(calls(route.dependant)) and (method, route.path) not in ANONYMOUS
    ]
    assert open_pages == []
