"""The gateway's ASGI application: the JSON API, the console, security headers, errors.

`create_app(Settings(home=...))` builds it; `gateway.server` serves it with uvicorn.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import api, api_records, console, console_records
from gateway.auth import host_name, known_host
from gateway.errors import ApiError
from gateway.state import Gateway, Settings

log = logging.getLogger("accord.gateway")

# No inline script or style anywhere (the console's JS and CSS are files under /static), no
# other origin, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# Request bodies beyond this are refused (413) before they are read into memory: a message is
# at most the node's limits.max_message_bytes (1 MiB by default), and JSON adds to that.
MAX_BODY_BYTES = 8 * 1024 * 1024


class _TooLarge(Exception):
    pass


class Headers:
    """Security headers on every answer, no caching of anything but static files, a bound on
    request bodies, and one log line per request: method, route template (not the path: no
    ids or query strings), status and time. Never a body, a justification, a name or a token."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self._app = app
        self._tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0
        static = scope["path"].startswith("/static/")
        length = dict(scope["headers"]).get(b"content-length", b"0")
        declared = int(length) if length.isdigit() else 0
        received = 0

        async def bounded() -> Message:
            # A body sent without a length (chunked) is cut off where it passes the bound.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise _TooLarge
            return message

        async def with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "same-origin"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if not static:
                    headers["Cache-Control"] = "no-store"
                if self._tls:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        try:
            if declared > MAX_BODY_BYTES:
                raise _TooLarge
            await self._app(scope, bounded, with_headers)
        except _TooLarge:
            if status:
                raise
            error = ApiError(413, "RESOURCE_EXHAUSTED", "request body too large")
            await JSONResponse(error.body(), status_code=413)(scope, receive, with_headers)
        except Exception as exc:
            # The type only: an exception's text could quote what a request carried.
            log.error("internal error %s", type(exc).__name__)
            if status:
                raise  # the answer has started; the server can only drop the connection
            error = ApiError(500, "INTERNAL", "internal error in the gateway; see its log")
            await JSONResponse(error.body(), status_code=500)(scope, receive, with_headers)
        finally:
            route = scope.get("route")
            where = getattr(route, "path", None) or ("/static" if static else "(no route)")
            log.info(
                "%s %s %d %.0f ms",
                scope["method"],
                where,
                status,
                (time.monotonic() - started) * 1000,
            )


class KnownHost:
    """Answers only requests whose Host header names this gateway (`auth.known_host`)."""

    def __init__(self, app: ASGIApp, *, names: frozenset[str]) -> None:
        self._app = app
        self._names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # One at most: h11 refuses a request with two (this check and the Origin check
            # could read different ones).
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            local = scope.get("server")
            if not known_host(host, local[0] if local else None, self._names):
                error = ApiError(
                    400,
                    "INVALID_ARGUMENT",
                    "this gateway does not serve the host name this request was sent to: use "
                    "its address, or a name its operator added with --server-name",
                )
                await JSONResponse(error.body(), status_code=400)(scope, receive, send)
                return
        await self._app(scope, receive, send)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if _wants_json(request):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
    if exc.status == 401:
        response: Response = RedirectResponse("/login", status_code=303)
        request.app.state.gateway.clear_session(response)
        return response
    return console.error_page(request, exc)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in exc.errors()
    )
    return await _api_error(request, ApiError(400, "INVALID_ARGUMENT", problems))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return await _api_error(request, ApiError(exc.status_code, code, str(exc.detail)))


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Accord gateway",
        version="1",
        description="HTTP/JSON API of one Accord node, as the calling user. People log in "
        "(session cookie plus X-CSRF-Token); systems send their local user token as "
        "`Authorization: Bearer`. Errors carry the node's reason codes.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = Gateway(settings)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.include_router(api.router)
    app.include_router(api_records.router)
    app.include_router(console.router)
    app.include_router(console_records.router)
    static = resources.files("gateway") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        up = await app.state.gateway.node.healthy()
        body: dict[str, Any] = {"node": "serving" if up else "not serving"}
        return JSONResponse(body, status_code=200 if up else 503)

    names = frozenset(n for n in map(host_name, settings.server_names) if n)
    app.add_middleware(KnownHost, names=names)
    app.add_middleware(Headers, tls=settings.tls)  # outermost: also on KnownHost's refusals
    return app
