"""Local users (issue 10, item 6): an administrator never holds another user's token, and no
single administrator makes a supervisor, auditor or administrator alone.

Everything goes through the local API, as the CLI and the gateway do.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import grpc

from accord.v1 import local_pb2
from node.app import Node
from node.client import connect
from node.clock import OffsetClock
from tests.harness import Federation, held, incident, node_send

NL, DE = "NL-POL", "DE-BKA"
WHY = "case 2026/0042: check the suspect"


async def call(node: Node, user: str | None, method: str, request: Any) -> Any:
    """One local API call as `user` (None: without a token), or the error it ends with."""
    async with connect(node.config.home, user=user, anonymous=user is None) as c:
        try:
            return await getattr(c.api, method)(request)
        except grpc.aio.AioRpcError as exc:
            return exc


def denied(result: Any) -> str:
    assert isinstance(result, grpc.aio.AioRpcError), result
    return str(dict(result.trailing_metadata() or ()).get("accord-denied", result.code().name))


async def enrol(node: Node, name: str, code: str) -> str:
    enrolled = await call(node, None, "Enrol", local_pb2.EnrolRequest(name=name, code=code))
    assert isinstance(enrolled, local_pb2.EnrolResponse), enrolled
    path = node.config.home / "tokens" / name
    path.write_text(enrolled.token)
    return str(enrolled.token)


def add(name: str, role: str) -> local_pb2.AddUserRequest:
    return local_pb2.AddUserRequest(
        name=name, role=role, clearances=["serious-crime-investigation"]
    )


async def approve(node: Node, approver: str, name: str) -> local_pb2.DecideUserResponse:
    decided = await call(
        node, approver, "DecideUser", local_pb2.DecideUserRequest(name=name, approve=True)
    )
    assert isinstance(decided, local_pb2.DecideUserResponse), decided
    return decided


async def bootstrap(node: Node, name: str = "ada") -> None:
    """The second administrator: the only one the first adds alone."""
    added = await call(node, "admin", "AddUser", add(name, "administrator"))
    assert not added.pending_approval
    await enrol(node, name, added.enrolment_code)


async def test_a_new_user_gets_a_two_part_single_use_expiring_code_never_a_token(
    fed3: Federation,
) -> None:
    _nl, de, _ = await fed3.start_all()
    alone = await call(de, "admin", "AddUser", add("otto", "liaison_officer"))
    assert alone.pending_approval and alone.user.state == "awaiting approval"
    early = await call(
        de, None, "Enrol", local_pb2.EnrolRequest(name="otto", code=alone.enrolment_code)
    )
    assert denied(early) == "ENROLMENT"  # one administrator alone cannot make an officer
    assert "token" not in local_pb2.AddUserResponse.DESCRIPTOR.fields_by_name
    await bootstrap(de)
    second = (await approve(de, "ada", "otto")).enrolment_code
    listed = await call(de, "admin", "ListUsers", local_pb2.ListUsersRequest())
    assert {u.name: u.state for u in listed.users}["otto"] == "not enrolled"

    for wrong in ("guess", alone.enrolment_code, second):
        one = await call(de, None, "Enrol", local_pb2.EnrolRequest(name="otto", code=wrong))
        assert denied(one) == "ENROLMENT"
    code = f"{alone.enrolment_code}+{second}"
    await enrol(de, "otto", code)
    me = await call(de, "otto", "WhoAmI", local_pb2.WhoAmIRequest())
    assert (me.name, me.role, me.state) == ("otto", "liaison_officer", "active")
    again = await call(de, None, "Enrol", local_pb2.EnrolRequest(name="otto", code=code))
    assert denied(again) == "ENROLMENT"  # single use

    late = await call(de, "admin", "AddUser", add("lara", "liaison_officer"))
    late_second = (await approve(de, "ada", "lara")).enrolment_code
    clock = fed3.clock
    assert isinstance(clock, OffsetClock)
    clock.advance(timedelta(hours=73))
    expired = await call(
        de,
        None,
        "Enrol",
        local_pb2.EnrolRequest(name="lara", code=f"{late.enrolment_code}+{late_second}"),
    )
    assert denied(expired) == "ENROLMENT" and "expired" in (expired.details() or "")
    log = await de.access_store.entries()
    assert any(e.action == "enrol" and e.user == "otto" and e.outcome == "granted" for e in log)


async def test_changes_that_give_access_need_a_second_administrator(fed3: Federation) -> None:
    """A supervisor asked for by the only administrator waits (no access, no enrolment); the
    asker cannot approve; a second administrator, added alone while there was one, approves
    and gives the second half of the code, so neither administrator alone can enrol as the
    supervisor. A promotion, new clearances and enabling wait the same way; less access does
    not. Once the node has had two administrators, a third needs approval."""
    nl, de, _ = await fed3.start_all()
    asked = await call(de, "admin", "AddUser", add("sven", "supervisor"))
    assert asked.pending_approval and asked.user.state == "awaiting approval"
    first = asked.enrolment_code
    early = await call(de, None, "Enrol", local_pb2.EnrolRequest(name="sven", code=first))
    assert "awaits a second administrator" in (early.details() or "")
    own = await call(
        de, "admin", "DecideUser", local_pb2.DecideUserRequest(name="sven", approve=True)
    )
    assert denied(own) == "FOUR_EYES"

    await bootstrap(de)
    third = await call(de, "admin", "AddUser", add("abe", "administrator"))
    assert third.pending_approval  # no longer the only one

    approved = await approve(de, "ada", "sven")
    second = approved.enrolment_code
    assert second and approved.user.role == "supervisor"
    for partial in (first, second):
        one = await call(de, None, "Enrol", local_pb2.EnrolRequest(name="sven", code=partial))
        assert denied(one) == "ENROLMENT"
    await enrol(de, "sven", f"{first}+{second}")
    sent = await node_send(nl, incident(to=[DE]))
    await held(de, sent.message_id, sender=NL)
    read = await call(
        de, "sven", "Get", local_pb2.GetRequest(message_id=sent.message_id, justification=WHY)
    )
    assert isinstance(read, local_pb2.GetResponse)

    added = await call(de, "admin", "AddUser", add("olaf", "liaison_officer"))
    await enrol(
        de, "olaf", f"{added.enrolment_code}+{(await approve(de, 'ada', 'olaf')).enrolment_code}"
    )
    promoted = await call(
        de, "admin", "SetRole", local_pb2.SetRoleRequest(name="olaf", role="auditor")
    )
    assert promoted.role == "liaison_officer" and promoted.requested_role == "auditor"
    rejected = await call(
        de, "ada", "DecideUser", local_pb2.DecideUserRequest(name="olaf", approve=False)
    )
    assert rejected.user.role == "liaison_officer" and not rejected.user.requested_role

    wider = ["serious-crime-investigation", "missing-persons"]
    more = await call(
        de, "admin", "SetClearances", local_pb2.SetClearancesRequest(name="olaf", clearances=wider)
    )
    assert list(more.clearances) == ["serious-crime-investigation"]
    assert more.has_requested_clearances and sorted(more.requested_clearances) == sorted(wider)
    assert sorted((await approve(de, "ada", "olaf")).user.clearances) == sorted(wider)
    fewer = await call(
        de,
        "admin",
        "SetClearances",
        local_pb2.SetClearancesRequest(name="olaf", clearances=["missing-persons"]),
    )
    assert list(fewer.clearances) == ["missing-persons"]  # less access: at once
    lowered = await call(
        de, "admin", "SetRole", local_pb2.SetRoleRequest(name="sven", role="liaison_officer")
    )
    assert lowered.role == "liaison_officer"


async def test_administrators_are_sidelined_and_users_enabled_only_with_a_second(
    fed3: Federation,
) -> None:
    _nl, de, _ = await fed3.start_all()
    for request, method in (
        (local_pb2.DisableUserRequest(name="admin"), "DisableUser"),
        (local_pb2.SetRoleRequest(name="admin", role="auditor"), "SetRole"),
    ):
        assert denied(await call(de, "admin", method, request)) == "LAST_ADMINISTRATOR"
    await bootstrap(de)
    # A node that has had two administrators keeps two.
    off = await call(de, "ada", "DisableUser", local_pb2.DisableUserRequest(name="admin"))
    assert denied(off) == "LAST_ADMINISTRATOR"
    abe = await call(de, "admin", "AddUser", add("abe", "administrator"))
    await enrol(
        de, "abe", f"{abe.enrolment_code}+{(await approve(de, 'ada', 'abe')).enrolment_code}"
    )

    asked = await call(de, "ada", "DisableUser", local_pb2.DisableUserRequest(name="admin"))
    assert asked.state == "active" and asked.requested_state == "disabled"
    own = await call(
        de, "ada", "DecideUser", local_pb2.DecideUserRequest(name="admin", approve=True)
    )
    assert denied(own) == "FOUR_EYES"
    assert (await approve(de, "abe", "admin")).user.state == "disabled"
    assert denied(await call(de, "admin", "WhoAmI", local_pb2.WhoAmIRequest())) == (
        "UNAUTHENTICATED"
    )
    for name in ("ada", "abe"):
        last = await call(de, "ada", "DisableUser", local_pb2.DisableUserRequest(name=name))
        assert denied(last) == "LAST_ADMINISTRATOR"
    on = await call(de, "ada", "EnableUser", local_pb2.EnableUserRequest(name="admin"))
    assert on.state == "disabled" and on.requested_state == "active"
    assert (await approve(de, "abe", "admin")).user.state == "active"
    me = await call(de, "admin", "WhoAmI", local_pb2.WhoAmIRequest())
    assert me.name == "admin"


def test_enrolment_codes_are_safe_to_type_on_a_command_line() -> None:
    """A code is passed as `users enrol NAME --code CODE`: one that starts with '-' (as a
    URL-safe token can, one time in 32) is taken by argparse for an option."""
    from node.operations import enrolment_code

    codes = {enrolment_code() for _ in range(500)}
    assert len(codes) == 500
    assert all(re.fullmatch(r"[A-Z2-7]{26}", c) for c in codes)
