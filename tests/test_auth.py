"""Every certificate a node must refuse, tried against a real running node.

Each refusal is asserted as the caller meets it (the gRPC status and a message that says why)
and by what it left behind: nothing in the receiving node's store, not even a rejection.

Refusals happen in two places. The TLS handshake (grpcio/BoringSSL) refuses foreign-CA, missing,
expired and not-yet-valid client certificates; the client then only sees UNAVAILABLE, "failed
to connect" (the socket is closed, no TLS alert reaches it): the reason is only in the server's
log. Everything TLS accepts is checked again by the node's auth interceptor, which answers
UNAUTHENTICATED with the reason. Moving the node's clock lets the tests reach the interceptor's
own validity checks with certificates that TLS (on the real clock) still accepts.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import federation_pb2, federation_pb2_grpc
from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority, IssuedNode, load_key
from certs.identity import agency_dns_name
from node.app import Node
from node.audit.verify import AuditEntry, parse_entry
from node.clock import OffsetClock
from node.errors import Reason, Refused, Unauthenticated
from node.ids import uuid7
from node.signing import ENVELOPE, sign
from node.store.audit import Filters
from node.wire import FEATURES, FEATURES_KEY, parse_receipt
from tests.harness import FEDERATION, Federation, incident, node_send, until_delivered, wait_for

RECEIVER = "DE-BKA"
CALLER = "NL-POL"
GRPC_UNAUTHENTICATED = "16"
GRPC_OK = "0"
# What grpcio's client reports when the node's TLS handshake refuses its certificate.
HANDSHAKE_REFUSED = "failed to connect to all addresses"


@dataclass(frozen=True, slots=True)
class Caller:
    """What a client presents: a key and certificate (or none) and the CA it trusts."""

    ca_path: Path
    key_path: Path | None
    cert_path: Path | None


@pytest.fixture
async def fed(tmp_short: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_short, [CALLER, RECEIVER])
    yield federation
    await federation.stop_all()


@pytest.fixture
async def receiver(fed: Federation) -> Node:
    return await fed.start(RECEIVER)


def clock_of(fed: Federation) -> OffsetClock:
    assert isinstance(fed.clock, OffsetClock)
    return fed.clock


def as_caller(fed: Federation, issued: IssuedNode) -> Caller:
    return Caller(fed.authority.ca_path, issued.key_path, issued.cert_path)


def member(fed: Federation) -> Caller:
    """The caller's own valid, listed certificate, as `accord certs issue` handed it out."""
    issued = fed.authority.root / "issued" / CALLER
    return Caller(fed.authority.ca_path, issued / "node.key", issued / "node.pem")


def issue(fed: Federation, name: str, **changes: object) -> Caller:
    """A further certificate for the caller's agency, in its own directory."""
    issued = fed.authority.issue(
        agency=CALLER,
        endpoint="127.0.0.1:1",
        now=fed.now,
        out=fed.root / "extra" / name,
        **changes,  # type: ignore[arg-type]
    )
    for node in fed.nodes.values():
        node.reload()
    return as_caller(fed, issued)


def channel(node: Node, caller: Caller) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=caller.ca_path.read_bytes(),
        private_key=caller.key_path.read_bytes() if caller.key_path else None,
        certificate_chain=caller.cert_path.read_bytes() if caller.cert_path else None,
    )
    return grpc.aio.secure_channel(
        f"127.0.0.1:{node.port}",
        creds,
        options=[("grpc.ssl_target_name_override", agency_dns_name(FEDERATION, node.agency))],
    )


def envelope(caller: Caller, *, to: str = RECEIVER) -> pb.Envelope:
    """A well-formed incident from the caller's agency, signed with the caller's key.

    Were authentication skipped, the receiver would store it (or at least its rejection): so
    an empty store after a refused call shows the refusal came first.
    """
    content = incident(to=[to])
    content.message_id = uuid7()
    content.sender = CALLER
    content.agreement_id = "AGR-TEST"
    content.created_at.FromDatetime(datetime.now(UTC))
    data = content.SerializeToString()
    key = load_key(caller.key_path) if caller.key_path else ec.generate_private_key(ec.SECP256R1())
    return pb.Envelope(content=data, signature=sign(key, data, ENVELOPE))


async def get_policy(node: Node, caller: Caller) -> federation_pb2.SignedPolicy:
    async with channel(node, caller) as ch:
        stub = federation_pb2_grpc.FederationStub(ch)
        policy: federation_pb2.SignedPolicy = await stub.GetPolicy(
            federation_pb2.GetPolicyRequest(), timeout=3
        )
        return policy


async def exchange(node: Node, caller: Caller, *envelopes: pb.Envelope) -> list[pb.Receipt]:
    async with channel(node, caller) as ch:
        call = federation_pb2_grpc.FederationStub(ch).Exchange(
            timeout=3, metadata=((FEATURES_KEY, ",".join(FEATURES)),)
        )
        # The node sends headers once it has admitted the caller, or ends the call. Writing
        # only after that keeps the refusal's own status: a write that races it makes grpcio
        # report INTERNAL instead.
        await call.initial_metadata()
        if not call.done():
            for env in envelopes:
                await call.write(env)
            await call.done_writing()
        return [receipt async for receipt in call]


async def stored(node: Node) -> tuple[int, int]:
    return await node.store.count("messages"), await node.store.count("rejections")


async def assert_refused(node: Node, caller: Caller, code: grpc.StatusCode, *reasons: str) -> None:
    """Both federation calls fail with `code` and every reason word; nothing is stored, and
    each refusal by the interceptor is in the node's audit log."""
    before = await stored(node)
    logged = node.audit.journal.size
    for attempt in (get_policy(node, caller), exchange(node, caller, envelope(caller))):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await attempt
        assert refused.value.code() == code, refused.value.details()
        details = refused.value.details() or ""
        for reason in reasons:
            assert reason in details, details
    assert await stored(node) == before
    if code == grpc.StatusCode.UNAUTHENTICATED:

        async def audited() -> list[AuditEntry]:
            found = await node.audit.query(Filters(first=logged + 1, action="authenticate-peer"))
            return [parse_entry(e.data) for e in found] if len(found) >= 2 else []

        entries = await wait_for(audited)
        assert all(e.outcome == "refused" for e in entries)
        assert all(reason in e.detail for e in entries for reason in reasons)


async def assert_accepted(node: Node, caller: Caller) -> None:
    before, _ = await stored(node)
    policy = await get_policy(node, caller)
    assert policy.agency == node.agency
    receipts = await exchange(node, caller, envelope(caller))
    assert len(receipts) == 1
    info = parse_receipt(receipts[0].content)
    assert info.accepted, info.reason_code
    assert await stored(node) == (before + 1, 0)


# ---- refused at the TLS handshake ------------------------------------------------------------


async def test_certificate_from_unknown_ca_is_refused(fed: Federation, receiver: Node) -> None:
    # Same federation name and agency, a different authority: only the CA tells them apart.
    other = FederationAuthority.init(fed.root / "other", federation=FEDERATION, now=fed.now)
    forged = other.issue(agency=CALLER, endpoint="127.0.0.1:1", now=fed.now, out=fed.root / "o")
    await assert_refused(
        receiver, as_caller(fed, forged), grpc.StatusCode.UNAVAILABLE, HANDSHAKE_REFUSED
    )


async def test_no_client_certificate_is_refused(fed: Federation, receiver: Node) -> None:
    anonymous = Caller(fed.authority.ca_path, None, None)
    await assert_refused(receiver, anonymous, grpc.StatusCode.UNAVAILABLE, HANDSHAKE_REFUSED)


async def test_expired_certificate_is_refused(fed: Federation, receiver: Node) -> None:
    expired = issue(
        fed,
        "expired",
        not_before=fed.now - timedelta(days=30),
        not_after=fed.now - timedelta(days=1),
    )
    await assert_refused(receiver, expired, grpc.StatusCode.UNAVAILABLE, HANDSHAKE_REFUSED)


async def test_not_yet_valid_certificate_is_refused(fed: Federation, receiver: Node) -> None:
    early = issue(
        fed,
        "early",
        not_before=fed.now + timedelta(days=1),
        not_after=fed.now + timedelta(days=30),
    )
    await assert_refused(receiver, early, grpc.StatusCode.UNAVAILABLE, HANDSHAKE_REFUSED)


# ---- refused by the auth interceptor ---------------------------------------------------------


async def test_expiry_is_checked_on_the_nodes_clock(fed: Federation, receiver: Node) -> None:
    # TLS checks validity on the real clock; the node checks it again on its own clock (the
    # one drills move), so a certificate past its end on that clock is refused by the node.
    short = issue(fed, "short", not_after=datetime.now(UTC) + timedelta(hours=1))
    await assert_accepted(receiver, short)
    clock_of(fed).advance(timedelta(hours=2))
    await assert_refused(receiver, short, grpc.StatusCode.UNAUTHENTICATED, "expired at")


async def test_not_yet_valid_is_checked_on_the_nodes_clock(fed: Federation, receiver: Node) -> None:
    clock_of(fed).advance(timedelta(hours=-1))
    await assert_refused(receiver, member(fed), grpc.StatusCode.UNAUTHENTICATED, "not valid before")


async def test_revoked_certificate_is_refused(fed: Federation, receiver: Node) -> None:
    await assert_accepted(receiver, member(fed))
    fed.authority.revoke(agency=CALLER, now=fed.now)
    receiver.reload()
    # Revocation also drops the agency from the directory; the caller must still hear why.
    assert receiver.trust.directory is not None
    assert receiver.trust.directory.member(CALLER) is None
    await assert_refused(receiver, member(fed), grpc.StatusCode.UNAUTHENTICATED, "revoked")
    assert await stored(receiver) == (1, 0)


async def test_revoked_certificate_still_listed_is_refused(fed: Federation, receiver: Node) -> None:
    # The CRL and the directory are separate files; a node may hold a directory that still
    # lists a certificate its CRL revokes. The CRL wins.
    listed = fed.authority.directory().members
    fed.authority.revoke(agency=CALLER, now=fed.now)
    fed.authority.publish_directory(now=fed.now, members=listed)
    receiver.reload()
    assert receiver.trust.directory is not None
    assert receiver.trust.directory.member(CALLER) is not None
    await assert_refused(receiver, member(fed), grpc.StatusCode.UNAUTHENTICATED, "revoked")


async def test_revoked_unlisted_certificate_says_revoked(fed: Federation, receiver: Node) -> None:
    # A second certificate of a member, never listed, then revoked by serial: the answer names
    # the revocation, not merely the directory mismatch.
    spare = fed.authority.issue(
        agency=CALLER, endpoint="127.0.0.1:1", now=fed.now, publish=False, out=fed.root / "s"
    )
    fed.authority.revoke(serial=spare.serial, now=fed.now)
    receiver.reload()
    await assert_refused(
        receiver, as_caller(fed, spare), grpc.StatusCode.UNAUTHENTICATED, "revoked"
    )
    await assert_accepted(receiver, member(fed))


@pytest.mark.parametrize(
    ("uris", "reason"),
    [
        (["spiffe://other.test/agency/NL-POL"], "spiffe://other.test/agency/NL-POL"),
        ([], "none"),
        (
            ["spiffe://accord.test/agency/NL-POL", "spiffe://accord.test/agency/FR-PN"],
            "spiffe://accord.test/agency/FR-PN",
        ),
        (["spiffe://accord.test/agency/nl-pol"], "nl-pol"),
    ],
    ids=["other-federation", "no-spiffe-id", "two-spiffe-ids", "malformed-agency-code"],
)
async def test_wrong_identity_is_refused(
    fed: Federation, receiver: Node, uris: list[str], reason: str
) -> None:
    # Listed in the directory (publish=True), so only the identity in the SAN is wrong.
    wrong = issue(fed, "wrong", uris=uris)
    await assert_refused(
        receiver, wrong, grpc.StatusCode.UNAUTHENTICATED, "peer certificate identity", reason
    )


async def test_certificate_not_listed_in_directory_is_refused(
    fed: Federation, receiver: Node
) -> None:
    unlisted = issue(fed, "unlisted", publish=False)
    await assert_refused(
        receiver,
        unlisted,
        grpc.StatusCode.UNAUTHENTICATED,
        f"is not the one the directory lists for {CALLER}",
    )
    await assert_accepted(receiver, member(fed))


async def test_stale_crl_fails_closed_both_ways(fed: Federation) -> None:
    nl = await fed.start(CALLER)
    await fed.start(RECEIVER)
    await fed.stop(RECEIVER)
    sent = await node_send(nl, incident(to=[RECEIVER]))  # queued while the receiver is down
    fed.authority.publish_crl(now=fed.now, next_update=timedelta(seconds=-60))
    fed.reload_all()
    de = await fed.start(RECEIVER)

    # Inbound: every caller is refused, even a valid member.
    await assert_refused(
        de, member(fed), grpc.StatusCode.UNAUTHENTICATED, "CRL expired", "accord certs crl"
    )

    # Outbound: a new send is refused at once; what was queued waits, the link does not connect.
    with pytest.raises(Refused) as refused:
        await node_send(nl, incident(to=[RECEIVER]))
    assert refused.value.reason == Reason.FEDERATION_STALE and "CRL expired" in str(refused.value)

    async def refused_attempt() -> bool:
        (delivery,) = await nl.store.deliveries(sent.message_id)
        return delivery.attempts >= 1

    await wait_for(refused_attempt, timeout=3)
    (delivery,) = await nl.store.deliveries(sent.message_id)
    assert delivery.state == "queued"
    assert "CRL expired" in delivery.last_error
    assert await stored(de) == (0, 0)

    # A fresh CRL ends the refusal: the queued message is delivered, nothing was lost.
    fed.authority.publish_crl(now=datetime.now(UTC))
    fed.reload_all()

    await until_delivered(nl, sent, timeout=4)
    assert await stored(de) == (1, 0)


async def test_older_crl_cannot_undo_a_revocation(fed: Federation, receiver: Node) -> None:
    # A CRL published in the same second as the revocation ties on thisUpdate; replaying it
    # must not make the revoked certificate good again.
    before = fed.authority.crl_path.read_bytes()
    fed.authority.revoke(agency=CALLER, now=fed.now)
    receiver.reload()
    fed.authority.crl_path.write_bytes(before)
    receiver.reload()
    await assert_refused(receiver, member(fed), grpc.StatusCode.UNAUTHENTICATED, "revoked")


# ---- TLS below 1.3 ---------------------------------------------------------------------------


def raw_grpc_call(
    port: int, caller: Caller, *, tls: ssl.TLSVersion, method: str, body: bytes
) -> dict[str, str]:
    """One unary gRPC call over HTTP/2 with a pinned TLS version; headers plus trailers.

    grpcio's client cannot cap the TLS version, so this speaks the wire protocol itself.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = tls
    ctx.maximum_version = tls
    ctx.load_verify_locations(caller.ca_path)
    assert caller.cert_path is not None and caller.key_path is not None
    ctx.load_cert_chain(caller.cert_path, caller.key_path)
    ctx.set_alpn_protocols(["h2"])
    authority = agency_dns_name(FEDERATION, RECEIVER)
    frame = b"\x00" + len(body).to_bytes(4, "big") + body
    answer: dict[str, str] = {}
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=authority) as tls_sock,
    ):
        assert tls_sock.version() == ("TLSv1.3" if tls is ssl.TLSVersion.TLSv1_3 else "TLSv1.2")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "https"),
                (":path", method),
                (":authority", authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        conn.send_data(stream, frame, end_stream=True)
        tls_sock.sendall(conn.data_to_send())
        ended = False
        while not ended:
            data = tls_sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    for name, value in event.headers:
                        key = name.decode() if isinstance(name, bytes) else name
                        text = value.decode() if isinstance(value, bytes) else value
                        answer[key] = text
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if isinstance(
                    event,
                    h2.events.StreamEnded | h2.events.StreamReset | h2.events.ConnectionTerminated,
                ):
                    ended = True
            tls_sock.sendall(conn.data_to_send())
    return answer


async def test_tls_below_1_3_is_refused(fed: Federation, receiver: Node) -> None:
    caller = member(fed)
    env = envelope(caller).SerializeToString()
    calls = [
        ("/accord.v1.Federation/GetPolicy", b""),
        ("/accord.v1.Federation/Exchange", env),
    ]
    for method, body in calls:
        try:
            answer = await asyncio.to_thread(
                raw_grpc_call,
                receiver.port,
                caller,
                tls=ssl.TLSVersion.TLSv1_2,
                method=method,
                body=body,
            )
        except ssl.SSLError:
            continue  # refused at the handshake: just as good
        assert answer.get("grpc-status") == GRPC_UNAUTHENTICATED, answer
        message = urllib.parse.unquote(answer.get("grpc-message", ""))
        assert "TLSv1.2 refused" in message and "TLS 1.3" in message, message
    assert await stored(receiver) == (0, 0)


async def test_tls_1_3_raw_client_is_served(fed: Federation, receiver: Node) -> None:
    # Positive control for the raw client: the same request over TLS 1.3 is answered.
    answer = await asyncio.to_thread(
        raw_grpc_call,
        receiver.port,
        member(fed),
        tls=ssl.TLSVersion.TLSv1_3,
        method="/accord.v1.Federation/GetPolicy",
        body=b"",
    )
    assert answer.get("grpc-status") == GRPC_OK, answer


# ---- a revoked peer as a destination ----------------------------------------------------------


async def test_send_to_revoked_peer_is_refused(fed: Federation) -> None:
    nl = await fed.start(CALLER)
    de = await fed.start(RECEIVER)
    fed.authority.revoke(agency=RECEIVER, now=fed.now)
    fed.reload_all()
    with pytest.raises(Refused) as refused:
        await node_send(nl, incident(to=[RECEIVER]))
    assert refused.value.reason == Reason.WRONG_RECIPIENT
    assert f"{RECEIVER} is not a federation member" in str(refused.value)
    assert await nl.store.count("deliveries") == 0
    assert await stored(de) == (0, 0)


async def test_revoked_peer_still_listed_gets_nothing(fed: Federation) -> None:
    # The directory still lists the revoked certificate: the send passes policy and waits in
    # the outbox, but the link refuses to hand the peer anything.
    nl = await fed.start(CALLER)
    de = await fed.start(RECEIVER)
    listed = fed.authority.directory().members
    fed.authority.revoke(agency=RECEIVER, now=fed.now)
    fed.authority.publish_directory(now=fed.now, members=listed)
    fed.reload_all()
    sent = await node_send(nl, incident(to=[RECEIVER]))

    async def refused_attempt() -> bool:
        (delivery,) = await nl.store.deliveries(sent.message_id)
        return delivery.attempts >= 1

    await wait_for(refused_attempt, timeout=3)
    (delivery,) = await nl.store.deliveries(sent.message_id)
    assert delivery.state == "queued"
    assert "revoked" in delivery.last_error
    assert await stored(de) == (0, 0)


async def test_open_link_stops_when_peer_is_revoked(fed: Federation) -> None:
    # The link's stream was opened before the revocation; it must not carry anything after it.
    nl = await fed.start(CALLER)
    de = await fed.start(RECEIVER)
    first = await node_send(nl, incident(to=[RECEIVER]))

    async def first_accepted() -> bool:
        (d,) = await nl.store.deliveries(first.message_id)
        return d.state == "accepted"

    await wait_for(first_accepted, timeout=3)
    listed = fed.authority.directory().members
    fed.authority.revoke(agency=RECEIVER, now=fed.now)
    fed.authority.publish_directory(now=fed.now, members=listed)
    fed.reload_all()
    second = await node_send(nl, incident(to=[RECEIVER]))

    async def refused_attempt() -> bool:
        (d,) = await nl.store.deliveries(second.message_id)
        return d.attempts >= 1

    await wait_for(refused_attempt, timeout=3)
    (delivery,) = await nl.store.deliveries(second.message_id)
    assert delivery.state == "queued"
    assert "revoked" in delivery.last_error
    assert await stored(de) == (1, 0)


async def test_open_inbound_stream_stops_when_caller_is_revoked(fed: Federation) -> None:
    # NL-POL's stream into DE-BKA is open when NL-POL is revoked: DE-BKA stores nothing more.
    nl = await fed.start(CALLER)
    de = await fed.start(RECEIVER)
    first = await node_send(nl, incident(to=[RECEIVER]))

    async def first_accepted() -> bool:
        (d,) = await nl.store.deliveries(first.message_id)
        return d.state == "accepted"

    await wait_for(first_accepted, timeout=3)
    listed = fed.authority.directory().members
    fed.authority.revoke(agency=CALLER, now=fed.now)
    fed.authority.publish_directory(now=fed.now, members=listed)
    de.reload()  # only the receiver learns of it: the sender keeps sending
    second = await node_send(nl, incident(to=[RECEIVER]))

    async def refused_attempt() -> bool:
        (d,) = await nl.store.deliveries(second.message_id)
        return d.attempts >= 1

    await wait_for(refused_attempt, timeout=3)
    (delivery,) = await nl.store.deliveries(second.message_id)
    assert delivery.state == "queued"
    assert "revoked" in delivery.last_error
    assert await stored(de) == (1, 0)


# ---- after all the refusals, a member is still served -----------------------------------------


async def test_member_served_after_refusals(fed: Federation, receiver: Node) -> None:
    other = FederationAuthority.init(fed.root / "other", federation=FEDERATION, now=fed.now)
    forged = other.issue(agency=CALLER, endpoint="127.0.0.1:1", now=fed.now, out=fed.root / "o")
    await assert_refused(receiver, as_caller(fed, forged), grpc.StatusCode.UNAVAILABLE)
    await assert_refused(
        receiver, Caller(fed.authority.ca_path, None, None), grpc.StatusCode.UNAVAILABLE
    )
    wrong = issue(fed, "wrong", uris=[], publish=False)
    await assert_refused(receiver, wrong, grpc.StatusCode.UNAUTHENTICATED, "identity")
    answer = await asyncio.to_thread(
        raw_grpc_call,
        receiver.port,
        member(fed),
        tls=ssl.TLSVersion.TLSv1_2,
        method="/accord.v1.Federation/GetPolicy",
        body=b"",
    )
    assert answer.get("grpc-status") == GRPC_UNAUTHENTICATED
    await assert_accepted(receiver, member(fed))
    await assert_accepted(receiver, member(fed))


@pytest.mark.parametrize("change", ["stale-crl", "directory-lists-another-certificate"])
async def test_open_inbound_stream_stops_when_trust_changes(fed: Federation, change: str) -> None:
    # The caller's stream into the receiver was authenticated when it opened; what the receiver
    # learns afterwards applies to every later frame on it, not only to new calls.
    nl = await fed.start(CALLER)
    de = await fed.start(RECEIVER)
    first = await node_send(nl, incident(to=[RECEIVER]))

    async def first_accepted() -> bool:
        (d,) = await nl.store.deliveries(first.message_id)
        return d.state == "accepted"

    await wait_for(first_accepted, timeout=3)
    if change == "stale-crl":
        fed.authority.publish_crl(now=fed.now, next_update=timedelta(seconds=-60))
        expected = "CRL expired"
    else:
        # The authority re-keyed NL-POL; the old certificate is still valid but no longer listed.
        fed.authority.issue(
            agency=CALLER, endpoint="127.0.0.1:1", now=fed.now, out=fed.root / "rekeyed"
        )
        expected = "not the one the directory lists"
    de.reload()  # only the receiver learns of it: the sender keeps sending
    second = await node_send(nl, incident(to=[RECEIVER]))

    async def refused_attempt() -> bool:
        (d,) = await nl.store.deliveries(second.message_id)
        return d.attempts >= 1

    await wait_for(refused_attempt, timeout=3)
    (delivery,) = await nl.store.deliveries(second.message_id)
    assert delivery.state == "queued"
    assert "UNAUTHENTICATED" in delivery.last_error and expected in delivery.last_error
    assert await stored(de) == (1, 0)


async def test_sender_rechecks_a_remembered_peer_on_every_use(fed: Federation) -> None:
    # A link checks its peer before every batch; the node remembers the parsed certificate
    # between checks, but validity and revocation are still judged on each use.
    nl = await fed.start(CALLER)
    short = fed.authority.issue(
        agency=RECEIVER,
        endpoint="127.0.0.1:1",
        now=fed.now,
        not_after=fed.now + timedelta(hours=1),
        out=fed.root / "extra" / "short-receiver",
    )
    nl.reload()
    _, peer = nl.trust.member_peer(RECEIVER, fed.now)
    assert peer.serial == short.serial
    _, again = nl.trust.member_peer(RECEIVER, fed.now + timedelta(minutes=30))
    assert again is peer  # remembered, not parsed again
    with pytest.raises(Unauthenticated, match="expired at"):
        nl.trust.member_peer(RECEIVER, fed.now + timedelta(hours=2))
    listed = fed.authority.directory().members
    fed.authority.revoke(agency=RECEIVER, now=fed.now)
    fed.authority.publish_directory(now=fed.now, members=listed)  # still listed: the CRL wins
    nl.reload()
    with pytest.raises(Unauthenticated, match="revoked"):
        nl.trust.member_peer(RECEIVER, fed.now)
