"""Real federations for tests: a throwaway CA, real certificates, real nodes on port 0."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import federation_pb2
from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority, load_key
from certs.directory import Agreement
from certs.identity import agency_dns_name
from node import config as config_mod
from node import samples, wire
from node.app import Node
from node.clock import Clock, OffsetClock
from node.delivery.outbound import Sent
from node.home import init_home
from node.ids import uuid7
from node.messages import MessageMeta
from node.policy.access import Role, User
from node.signing import ENVELOPE, sign
from node.wire import FEATURES, FEATURES_KEY, MESSAGE_TYPES

FEDERATION = "accord.test"
incident = samples.incident  # the sample incident, as the tests import it from here
ALL_PURPOSES = (
    "serious-crime-investigation",
    "counter-terrorism",
    "organised-crime",
    "missing-persons",
    "public-order-major-event",
)


def short_tmp() -> Path:
    """A short temporary directory: unix socket paths must stay under ~100 bytes."""
    return Path(tempfile.mkdtemp(prefix="acc", dir="/tmp"))


def open_agreement(parties: Sequence[str], now: datetime, **changes: object) -> Agreement:
    agreement = Agreement(
        id="AGR-TEST",
        title="Test cooperation agreement",
        parties=tuple(parties),
        purposes=ALL_PURPOSES,
        message_types=MESSAGE_TYPES,
        max_retention_days=365,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
    return replace(agreement, **changes)  # type: ignore[arg-type]


class Templates:
    """Federations made once per test run, one per set of agencies, and copied for each test
    that asks for the same set: the CA, the nodes' keys and certificates, their homes and
    databases. A test changes only its own copy (revocations, agreements, endpoints), so
    sharing the throwaway PKI costs a copy instead of keys, certificates and schemas each
    time. The test run's conftest.py sets `TEMPLATES` (session scope)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple[str, ...], tuple[Path, datetime]] = {}

    def copy(self, agencies: Sequence[str], into: Path) -> datetime:
        """Copy the federation of `agencies` into `into` (which exists, empty); its `now`."""
        key = tuple(agencies)
        if key not in self._made:
            made = self.root / f"t{len(self._made)}"
            made.mkdir()
            self._made[key] = (made, Federation(made, agencies, template=False).now)
        made, now = self._made[key]
        shutil.copytree(made, into, dirs_exist_ok=True)
        for agency in agencies:  # the homes name the federation's files by absolute path
            config = into / agency.lower() / config_mod.CONFIG_FILE
            config.write_text(config.read_text().replace(str(made), str(into)))
        return now


TEMPLATES: Templates | None = None


class Federation:
    """A federation authority plus node homes; nodes are started in this event loop."""

    def __init__(
        self,
        root: Path,
        agencies: Sequence[str],
        *,
        clock: Clock | None = None,
        template: bool = True,
    ) -> None:
        """`template`: copied from the run's `TEMPLATES` when there are any (False: made
        here, keys and all)."""
        self.root = root
        self.clock = clock or OffsetClock()
        self.agencies = list(agencies)
        self.homes: dict[str, Path] = {}
        self.nodes: dict[str, Node] = {}
        if template and TEMPLATES is not None:
            self.now = TEMPLATES.copy(agencies, root)
            self.authority = FederationAuthority(root / "fed")
            self.homes = {agency: root / agency.lower() for agency in agencies}
            return
        self.now = datetime.now(UTC)
        self.authority = FederationAuthority.init(root / "fed", federation=FEDERATION, now=self.now)
        for agency in agencies:
            self.add_member(agency)
        self.authority.set_agreements((open_agreement(agencies, self.now),), now=self.now)

    def add_member(self, agency: str, *, listen: str = "127.0.0.1:0") -> Path:
        issued = self.authority.issue(agency=agency, endpoint="127.0.0.1:1", now=self.now)
        home = self.root / agency.lower()
        init_home(
            home,
            agency=agency,
            federation=FEDERATION,
            listen=listen,
            issued=issued.directory,
            directory=self.authority.directory_path,
            crl=self.authority.crl_path,
        )
        self.homes[agency] = home
        return home

    async def start(self, agency: str, *, port: int = 0) -> Node:
        home = self.homes[agency]
        cfg = config_mod.load(home)
        cfg = replace(cfg, node=replace(cfg.node, listen=f"127.0.0.1:{port}"))
        node = await Node.open(cfg, clock=self.clock)
        self.nodes[agency] = node
        self.authority.set_endpoint(agency=agency, endpoint=f"127.0.0.1:{node.port}", now=self.now)
        self.reload_all()
        return node

    async def start_all(self) -> list[Node]:
        return [await self.start(a) for a in self.agencies]

    def reload_all(self) -> None:
        for node in self.nodes.values():
            node.reload()

    async def stop(self, agency: str) -> None:
        node = self.nodes.pop(agency)
        await node.stop(grace=0.5)

    async def stop_all(self) -> None:
        """Stop every node, even if one fails to stop (its error is raised after the rest)."""
        errors: list[BaseException] = []
        for agency in list(self.nodes):
            try:
                await self.stop(agency)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


async def node_send(node: Node, content: pb.MessageContent) -> Sent:
    """What a local user's send does, past the user's access checks: the node's one send."""
    return await node.outbound.send(wire.draft(content))


def meta_of(content: pb.MessageContent) -> MessageMeta:
    """A content's meta, checked for structure, as the receiver sees it."""
    return wire.decode(content.SerializeToString()).meta


def liaison(
    *,
    to: Sequence[str],
    type_: pb.MessageType = pb.MESSAGE_TYPE_REQUEST_INFO,
    purpose: str = "missing-persons",
    text: str = "Request for information",
) -> pb.MessageContent:
    content = pb.MessageContent(
        recipients=list(to),
        type=type_,
        purpose=purpose,
        legal_basis="Directive (EU) 2023/977 Art. 4",
        handling_codes=[pb.HANDLING_CODE_H0],
        tlp=pb.TLP_GREEN,
        retention=pb.Retention(days=90),
        urgency=pb.URGENCY_URGENT,
    )
    content.liaison.subject = "Missing minor, last seen near Aachen"
    content.liaison.text = text
    return content


async def wait_for(predicate_coro, *, timeout: float = 10.0, interval: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns a truthy value; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate_coro()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def until_delivered(
    node: Node, *messages: Sent | str, state: str = "accepted", timeout: float = 10.0
) -> None:
    """Wait until `node` has stored a receipt from every recipient of each of `messages` (sent
    messages or their ids): each delivery in `state` ("accepted", "rejected", or "settled":
    either). AssertionError after `timeout` seconds."""
    ids = [m if isinstance(m, str) else m.message_id for m in messages]
    wanted = ("accepted", "rejected") if state == "settled" else (state,)

    async def delivered() -> bool:
        for message_id in ids:
            deliveries = await node.store.deliveries(message_id)
            if not deliveries or any(d.state not in wanted for d in deliveries):
                return False
        return True

    await wait_for(delivered, timeout=timeout)


# ---- crafted traffic (added for test_rejections / test_delivery) ------------------------------


def member_key(fed: Federation, agency: str) -> ec.EllipticCurvePrivateKey:
    """The signing key the federation issued to `agency` (the same key its node signs with)."""
    return load_key(fed.authority.root / "issued" / agency / "node.key")


def complete(draft: pb.MessageContent, *, sender: str, message_id: str = "") -> pb.MessageContent:
    """Fill in what Node.send would (id, sender, created time, agreement), without checks."""
    content = pb.MessageContent()
    content.CopyFrom(draft)
    content.message_id = message_id or content.message_id or uuid7()
    content.sender = sender
    if not content.HasField("created_at"):
        content.created_at.FromDatetime(datetime.now(UTC))
    content.agreement_id = content.agreement_id or "AGR-TEST"
    return content


def envelope_frame(content: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A serialised Envelope over `content`, signed with `key`."""
    frame: bytes = pb.Envelope(
        content=content, signature=sign(key, content, ENVELOPE)
    ).SerializeToString()
    return frame


class RawExchange:
    """A hand-driven Exchange stream to a node, authenticated (real mTLS) as a federation member.

    Frames are sent as raw bytes, so a test can put anything on the wire, Envelope or not.
    """

    def __init__(
        self,
        fed: Federation,
        *,
        as_agency: str,
        to: Node,
        batched: bool = False,
        features: Sequence[str] | None = FEATURES,
    ) -> None:
        """`features`: what the caller says it checks, in the stream's metadata, as a node's
        link does (None: no such metadata at all, as from an older node)."""
        self._batched = batched
        self._features = features
        issued = fed.authority.root / "issued" / as_agency
        self._creds = grpc.ssl_channel_credentials(
            root_certificates=(issued / "ca.pem").read_bytes(),
            private_key=(issued / "node.key").read_bytes(),
            certificate_chain=(issued / "node.pem").read_bytes(),
        )
        self._target = f"127.0.0.1:{to.port}"
        self._name = agency_dns_name(FEDERATION, to.agency)
        self._channel: grpc.aio.Channel | None = None
        self._call: Any = None

    async def __aenter__(self) -> RawExchange:
        self._channel = grpc.aio.secure_channel(
            self._target,
            self._creds,
            options=[
                ("grpc.ssl_target_name_override", self._name),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        exchange: Any = self._channel.stream_stream(
            "/accord.v1.Federation/ExchangeBatches"
            if self._batched
            else "/accord.v1.Federation/Exchange",
            request_serializer=None,  # frames go on the wire as given
            response_deserializer=(
                federation_pb2.ReceiptBatch.FromString if self._batched else pb.Receipt.FromString
            ),
        )
        features = self._features
        self._call = exchange(
            metadata=None if features is None else ((FEATURES_KEY, ",".join(features)),)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()

    async def send(self, frame: bytes, *, timeout: float = 5.0) -> pb.Receipt:
        """Write one frame and read the receipt that answers it."""
        await self.write(frame)
        return await self.read(timeout=timeout)

    async def write(self, frame: bytes) -> None:
        """Write a frame without waiting for its receipt (to pipeline several)."""
        await self._call.write(frame)

    async def read(self, *, timeout: float = 5.0) -> pb.Receipt:
        """The next receipt; AssertionError if the stream ended, AioRpcError if it failed."""
        receipt = await asyncio.wait_for(self._call.read(), timeout)
        if receipt is grpc.aio.EOF:
            code, details = await self._call.code(), await self._call.details()
            raise AssertionError(f"stream ended: {code} {details}")
        assert isinstance(receipt, pb.Receipt)
        return receipt


async def batch_receipts(raw: RawExchange, frame: bytes, *, expect: int) -> list[pb.Receipt]:
    """Write one EnvelopeBatch frame on a batched RawExchange; read receipts until `expect`."""
    call: Any = raw._call
    await call.write(frame)
    receipts: list[pb.Receipt] = []
    while len(receipts) < expect:
        batch = await asyncio.wait_for(call.read(), 5.0)
        if batch is grpc.aio.EOF:
            code, details = await call.code(), await call.details()
            raise AssertionError(f"stream ended: {code} {details}")
        receipts.extend(batch.receipts)
    return receipts


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for a node that must keep its port across restarts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def add_user(node: Node, name: str, role: str, purposes: Sequence[str] = ALL_PURPOSES) -> str:
    """Create a local user on a node as an administrator would, enrol them as the user would,
    and save the token where the CLI and `node.client.connect(home, user=name)` look for it.
    A role that needs a second administrator is approved by `admin2` (added the first time,
    as the bootstrap's second administrator)."""

    code = await approved_user(node, name, role, purposes)
    _, token = await node.operations.enrol(name=name, code=code)
    path = node.config.home / "tokens" / name
    path.write_text(token)
    path.chmod(0o600)
    return token


async def approved_user(
    node: Node, name: str, role: str, purposes: Sequence[str] = ALL_PURPOSES
) -> str:
    """Create a local user as `admin`, approved by `admin2` (every user but the bootstrap's
    second administrator needs one); their enrolment code, both parts."""
    admin = User("admin", Role.ADMINISTRATOR, frozenset())
    added = await node.operations.add_user(admin, name=name, role=role, clearances=list(purposes))
    code = added.code
    if added.record.user.pending:
        _, second, _ = await node.operations.decide_user(
            await second_admin(node), name=name, approve=True
        )
        code = f"{code}+{second}"
    return code


async def second_admin(node: Node) -> User:
    """The node's second administrator, `admin2`: added by the bootstrap administrator alone
    (allowed while it is the only one) and enrolled, the first time it is needed."""

    if await node.access_store.user("admin2") is None:
        admin = User("admin", Role.ADMINISTRATOR, frozenset())
        added = await node.operations.add_user(
            admin, name="admin2", role="administrator", clearances=[]
        )
        _, token = await node.operations.enrol(name="admin2", code=added.code)
        path = node.config.home / "tokens" / "admin2"
        path.write_text(token)
        path.chmod(0o600)
    return User("admin2", Role.ADMINISTRATOR, frozenset())


def grant(
    *,
    target: str,
    to: str,
    third: str,
    purpose: str = "serious-crime-investigation",
    transfer_purpose: str = "",
    granted: bool = True,
) -> pb.MessageContent:
    """The originator's TRANSFER_AUTHORISATION_GRANT letting `to` forward `target` to `third`."""
    return pb.MessageContent(
        recipients=[to],
        type=pb.MESSAGE_TYPE_TRANSFER_AUTHORISATION_GRANT,
        purpose=purpose,
        correlation_id=target,
        control=pb.ControlBody(
            target_message_id=target,
            third_agency=third,
            transfer_purpose=transfer_purpose,
            granted=granted,
        ),
    )


async def held(node: Node, message_id: str, *, sender: str, timeout: float = 10.0) -> None:
    """Wait until `node` holds the message `message_id` received from `sender`."""

    async def arrived() -> bool:
        return await node.store.get_message(message_id, sender=sender, direction="in") is not None

    await wait_for(arrived, timeout=timeout)


def configure(home: Path, section: str, **values: object) -> None:
    """Set fields of one section of a node home's config.toml (before the node starts)."""
    path = home / config_mod.CONFIG_FILE
    lines = path.read_text().splitlines()
    start = lines.index(f"[{section}]")
    for key, value in values.items():
        text = f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
        for at in range(start + 1, len(lines)):
            if lines[at].startswith("["):
                lines.insert(at, text)
                break
            if lines[at].split("=")[0].strip() == key:
                lines[at] = text
                break
        else:
            lines.append(text)
    path.write_text("\n".join(lines) + "\n")
