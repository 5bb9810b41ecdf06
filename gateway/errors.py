"""The gateway's one error type, and the one mapping from the node's gRPC status to HTTP.

Every error the gateway answers, in JSON or on a console page, is an `ApiError`: the HTTP
status, the gRPC code name it came from, and the node's reason code (`accord-reason`, for a
refused message) or missing condition (`accord-denied`, for a permission denial), so a client
need not parse messages.
"""

from __future__ import annotations

from typing import Any

import grpc

from node.client import DENIED_KEY, REASON_KEY, NodeNotRunningError

# A refusal by policy (FAILED_PRECONDITION, with a reason code) is 422: the request was well
# formed, and the agreements refuse it. Bad request fields are 400, FastAPI's validation too.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
BAD_GATEWAY = 502  # anything else the node answered (INTERNAL, UNKNOWN, ...)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, reason: str = "", denied: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.denied = denied

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "status": self.status,
                "code": self.code,
                "reason": self.reason or None,
                "denied": self.denied or None,
                "message": self.message,
            }
        }


def _trailer(exc: grpc.aio.AioRpcError, key: str) -> str:
    for name, value in exc.trailing_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else bytes(value).decode()
    return ""


def from_rpc(exc: grpc.aio.AioRpcError) -> ApiError:
    code = exc.code()
    message = exc.details() or code.name.lower()
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"the node is not answering ({message}); try again shortly"
    return ApiError(
        HTTP_STATUS.get(code, BAD_GATEWAY),
        code.name,
        message,
        reason=_trailer(exc, REASON_KEY),
        denied=_trailer(exc, DENIED_KEY),
    )


def node_down(exc: NodeNotRunningError) -> ApiError:
    return ApiError(503, "UNAVAILABLE", str(exc))


def unauthenticated(message: str = "log in, or send `Authorization: Bearer <token>`") -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def forbidden(code: str, message: str) -> ApiError:
    """Refused by the gateway itself (CSRF, origin): the node never saw the request."""
    return ApiError(403, "PERMISSION_DENIED", message, denied=code)
