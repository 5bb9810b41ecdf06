"""Attacker (b): an administrator acting alone tries to get content or a privileged token.

docs/security.md: administrators never see traffic; a supervisor, auditor or administrator
needs a second administrator, and their enrolment code has a part from each, "so neither can
enrol in the user's place alone".
"""

from __future__ import annotations

import grpc
import pytest

from accord.v1 import local_pb2
from node.client import connect
from tests.attack.common import SECRET, assert_refusal, read_as_token, red_incident_at
from tests.harness import Federation, held, incident, node_send, second_admin

CLEARED = ["serious-crime-investigation"]


@pytest.mark.parametrize("sideline", ["disable", "demote"])
async def test_one_administrator_cannot_sideline_the_other_and_approve_a_supervisor_alone(
    fed2: Federation, sideline: str
) -> None:
    """DE has two administrators, `admin` and `admin2`. `admin` alone disables (or demotes to
    liaison officer) `admin2`, which needs nobody's approval; now the only active
    administrator, it adds a third administrator under the bootstrap rule (no approval,
    one-part code it redeems itself), has that account approve the supervisor it asks for,
    joins both code parts and reads NL's TLP:RED incident. Four eyes, kept by one person.
    Secure: some step of this chain is refused, and the RED content is never read."""
    nl, de = await fed2.start_all()
    home = de.config.home
    await second_admin(de)  # a legitimate second administrator exists
    red = await red_incident_at(nl, de)

    async def chain() -> str | None:
        async with connect(home, user="admin") as a, connect(home, anonymous=True) as anon:
            if sideline == "disable":
                await a.api.DisableUser(local_pb2.DisableUserRequest(name="admin2"))
            else:
                await a.api.SetRole(local_pb2.SetRoleRequest(name="admin2", role="liaison_officer"))
            third = await a.api.AddUser(
                local_pb2.AddUserRequest(name="mallory", role="administrator")
            )
            mallory = (
                await anon.api.Enrol(
                    local_pb2.EnrolRequest(name="mallory", code=third.enrolment_code)
                )
            ).token
            sup = await a.api.AddUser(
                local_pb2.AddUserRequest(name="sup", role="supervisor", clearances=CLEARED)
            )
            async with connect(home, token=mallory) as m:
                second = await m.api.DecideUser(
                    local_pb2.DecideUserRequest(name="sup", approve=True)
                )
            token = (
                await anon.api.Enrol(
                    local_pb2.EnrolRequest(
                        name="sup", code=f"{sup.enrolment_code}+{second.enrolment_code}"
                    )
                )
            ).token
        return await read_as_token(home, token, red)

    try:
        read = await chain()
    except grpc.aio.AioRpcError as refused:
        assert_refusal(refused)
        return
    assert read != SECRET, "one administrator alone made a supervisor and read TLP:RED content"


async def test_approving_a_promotion_of_an_unenrolled_user_keeps_the_code_one_part(
    fed2: Federation,
) -> None:
    """`admin` adds `x` as a liaison officer (one-part code, which `admin` holds), then asks
    for `x` to become a supervisor before `x` has enrolled. `admin2` approves what looks like a
    promotion: no second code part is made, so `admin` alone redeems its own code for a
    supervisor token and reads TLP:RED. Secure: after approval the code needs the approver's
    part, as for a supervisor created directly."""
    nl, de = await fed2.start_all()
    home = de.config.home
    await second_admin(de)
    red = await red_incident_at(nl, de)

    async def chain() -> str | None:
        async with connect(home, user="admin") as a:
            added = await a.api.AddUser(
                local_pb2.AddUserRequest(name="x", role="liaison_officer", clearances=CLEARED)
            )
            await a.api.SetRole(local_pb2.SetRoleRequest(name="x", role="supervisor"))
        async with connect(home, user="admin2") as b:
            await b.api.DecideUser(local_pb2.DecideUserRequest(name="x", approve=True))
        async with connect(home, anonymous=True) as anon:
            enrolled = await anon.api.Enrol(
                local_pb2.EnrolRequest(name="x", code=added.enrolment_code)
            )
        return await read_as_token(home, enrolled.token, red)

    try:
        read = await chain()
    except grpc.aio.AioRpcError as refused:
        assert_refusal(refused)
        return
    assert read != SECRET, (
        "the administrator who asked for the supervisor enrolled it alone and read TLP:RED"
    )


async def test_an_administrator_alone_cannot_read_traffic(fed2: Federation) -> None:
    """docs/security.md's trust table: administrators never see traffic. `admin` adds a
    liaison officer (no second administrator needed), redeems the one-part code itself before
    any real user could, and reads NL's TLP:AMBER incident. (docs/security.md lists this as
    "what remains"; the table above it says otherwise.) Secure: an administrator alone never
    holds a token that reads content."""
    nl, de = await fed2.start_all()
    home = de.config.home
    sent = await node_send(
        nl, incident(to=[de.agency], narrative="AMBER: the getaway car is a blue Audi")
    )
    await held(de, sent.message_id, sender=nl.agency)
    try:
        async with connect(home, user="admin") as a, connect(home, anonymous=True) as anon:
            added = await a.api.AddUser(
                local_pb2.AddUserRequest(name="puppet", role="liaison_officer", clearances=CLEARED)
            )
            enrolled = await anon.api.Enrol(
                local_pb2.EnrolRequest(name="puppet", code=added.enrolment_code)
            )
    except grpc.aio.AioRpcError as refused:
        assert_refusal(refused)
        return
    assert await read_as_token(home, enrolled.token, sent.message_id) is None, (
        "an administrator alone enrolled a liaison officer it created and read the content"
    )


async def test_admin2_bootstrap_is_the_only_unapproved_administrator(fed2: Federation) -> None:
    """Sanity of the setup the chain above relies on (holds today): a node with two active
    administrators cannot add a third without approval."""
    _, de = await fed2.start_all()
    await second_admin(de)
    async with connect(de.config.home, user="admin") as a:
        added = await a.api.AddUser(local_pb2.AddUserRequest(name="third", role="administrator"))
    assert added.pending_approval
