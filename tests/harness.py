"""Real federations for tests: a throwaway CA, real certificates, real nodes on port 0."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accord.v1 import message_pb2 as pb
from certs.ca import FederationAuthority
from certs.directory import Agreement
from node import config as config_mod
from node.app import Node
from node.clock import Clock, OffsetClock
from node.envelope import MESSAGE_TYPES
from node.home import init_home

FEDERATION = "accord.test"
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


class Federation:
    """A federation authority plus node homes; nodes are started in this event loop."""

    def __init__(self, root: Path, agencies: Sequence[str], *, clock: Clock | None = None) -> None:
        self.root = root
        self.clock = clock or OffsetClock()
        self.now = datetime.now(UTC)
        self.authority = FederationAuthority.init(root / "fed", federation=FEDERATION, now=self.now)
        self.agencies = list(agencies)
        self.homes: dict[str, Path] = {}
        self.nodes: dict[str, Node] = {}
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
        node = Node(cfg, clock=self.clock)
        await node.start()
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
        for agency in list(self.nodes):
            await self.stop(agency)


def incident(
    *,
    to: Sequence[str],
    purpose: str = "serious-crime-investigation",
    retention_days: int = 30,
    narrative: str = "Armed robbery of a cash transport on the A2 near the border.",
    type_: int = pb.MESSAGE_TYPE_INCIDENT_PUBLISH,
) -> pb.MessageContent:
    content = pb.MessageContent(
        recipients=list(to),
        type=type_,
        purpose=purpose,
        legal_basis="Council Framework Decision 2006/960/JHA",
        handling_codes=[pb.HANDLING_CODE_H0],
        tlp=pb.TLP_AMBER,
        retention=pb.Retention(days=retention_days),
        onward_transfer=pb.ONWARD_TRANSFER_WITH_ORIGINATOR_CONSENT,
        urgency=pb.URGENCY_NORMAL,
    )
    body = content.incident
    body.incident_id = "INC-2026-0042"
    body.offence.CopyFrom(pb.OffenceCode(scheme="eu-eaw-32", code="armed-robbery", label="Organised or armed robbery"))
    body.location.CopyFrom(pb.Location(country="NL", place="Venlo"))
    body.narrative = narrative
    person = body.entities.add(entity_id="p1")
    person.person.CopyFrom(pb.Person(role=pb.PERSON_ROLE_SUSPECT, family_name="Jansen", given_names="Piet"))
    person.evaluation.CopyFrom(pb.Evaluation(source=pb.SOURCE_RELIABILITY_B, information=pb.INFORMATION_ACCURACY_2))
    return content


def liaison(*, to: Sequence[str], type_: int = pb.MESSAGE_TYPE_REQUEST_INFO, purpose: str = "missing-persons", text: str = "Request for information") -> pb.MessageContent:
    content = pb.MessageContent(
        recipients=list(to),
        type=type_,
        purpose=purpose,
        legal_basis="Directive (EU) 2023/977 Art. 4",
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
