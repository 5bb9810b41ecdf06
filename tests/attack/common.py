"""Helpers for the attack tests: what an attacker does with the real local API and real nodes.

Every test in tests/attack/ plays an attacker against real nodes on 127.0.0.1 (real mutual TLS,
real SQLite, the real local API or gateway) and asserts the SECURE behaviour: a test that fails
shows a hole that is open today (docs/security.md names who is trusted for what).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.client import connect
from tests.harness import held, incident, node_send

NL, DE, FR, BE = "NL-POL", "DE-BKA", "FR-PN", "BE-FPP"
WHY = "Case 2026/0042: identify the suspect of the Venlo robbery"
SECRET = "The informant inside the Venlo crew is codenamed KESTREL"


# How a node refuses a step of an attack: any of these ends the attack, as the secure outcome.
# (UNKNOWN, INTERNAL or UNAUTHENTICATED from a broken node never count as a refusal.)
REFUSALS = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)


def assert_refusal(exc: grpc.aio.AioRpcError) -> None:
    """`exc` is the node refusing a step (not failing): the attack ended there."""
    assert exc.code() in REFUSALS, f"{exc.code().name}: {exc.details()}"


def trailer(exc: grpc.aio.AioRpcError, key: str) -> str:
    return str(dict(exc.trailing_metadata() or ()).get(key, ""))


async def red_incident_at(sender: Node, receiver: Node, *, narrative: str = SECRET) -> str:
    """`sender` sends a TLP:RED incident to `receiver`; its id once `receiver` holds it."""
    content = incident(to=[receiver.agency], narrative=narrative)
    content.tlp = pb.TLP_RED
    sent = await node_send(sender, content)
    await held(receiver, sent.message_id, sender=sender.agency)
    return sent.message_id


async def read_as_token(home: Path, token: str, message_id: str) -> str | None:
    """The narrative a token's holder reads through the local API, or None if refused."""
    async with connect(home, token=token) as c:
        try:
            got = await c.api.Get(local_pb2.GetRequest(message_id=message_id, justification=WHY))
        except grpc.aio.AioRpcError:
            return None
    text: str = got.content.incident.narrative or got.content.liaison.text
    return text
