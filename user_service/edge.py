"""The gateway's edge: how much a request may send, and the headers every answer carries (issue 5)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A JSON answer renders nothing: no script, style, frame or plug-in may load on its account.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# A patient's document as sent (an image or a PDF): shown, never run; a PDF's scripts stay inert.
DOCUMENT_POLICY = API_POLICY + "; sandbox"
DOCUMENT_PATHS = "/api/v1/documents/"


def is_document(path: str) -> bool:
    """A patient's document as sent: /documents/{id}, or /prescriptions/{id}/document (the API's, or
    the web UI's, which a page shows in an <img>: the page's own policy decides what it may load)."""
    return path.startswith(DOCUMENT_PATHS) or (
        path.startswith(("/api/v1/prescriptions/", "/prescriptions/")) and path.endswith("/document")
    )


# FastAPI's Swagger UI page: script and style from jsDelivr, one inline script, its icon from
# fastapi.tiangolo.com, images as data: URIs, and the OpenAPI document fetched from here.
DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src https://cdn.jsdelivr.net; img-src data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'"
)
# The web UI's pages (user_service/web): script, style and images from here only, no inline script or
# style and nothing evaluated (htmx is configured for it), forms posted only here, never framed.
WEB_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": API_POLICY,
    # Nearly every answer is someone's data or changes by the second: no browser or proxy keeps a copy.
    "Cache-Control": "no-store",
}
# The web UI's own files (its stylesheet, htmx copied in at set-up): kept, but asked again each time
# (an ETag answers 304), so a deployment's new file is used at once.
STATIC_PATHS = "/static/"
STATIC_CACHE = "no-cache"


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413, whether its Content-Length says so or it
    grows past the limit while streaming in (chunked). Nothing is read before the route asks for it.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Paths that take a larger body (an uploaded document), and how large.
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        # The server holds a body to its Content-Length: only a chunked one is counted as it arrives.
        received = int(declared) if declared.isdigit() else 0

        async def receive_within_limit() -> Message:
            nonlocal received
            if received > limit:
                raise too_large(limit)
            message = await receive()
            if not declared:
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, receive_within_limit, send)


def too_large(limit: int) -> HTTPException:
    # FastAPI hands an HTTPException met while reading a body on to the problem+json handler.
    return HTTPException(413, f"the request body may hold at most {limit} bytes")


class SecurityHeaders:
    """Adds SECURITY_HEADERS (and HSTS) to every answer that has not set its own; the docs pages get the
    policy their CDN assets need."""

    def __init__(self, app: ASGIApp, *, docs_paths: Collection[str], hsts_max_age_seconds: int) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        self.headers = dict(SECURITY_HEADERS)
        if hsts_max_age_seconds:
            # Browsers heed it only over HTTPS, so it is harmless on a plain-HTTP development run.
            self.headers["Strict-Transport-Security"] = f"max-age={hsts_max_age_seconds}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        policy = (
            DOCS_POLICY
            if path in self.docs_paths
            else DOCUMENT_POLICY
            if is_document(path)
            else API_POLICY
            if path.startswith("/api/") or path == "/metrics"
            else WEB_POLICY
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if path.startswith(STATIC_PATHS):
                    headers.setdefault("Cache-Control", STATIC_CACHE)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
