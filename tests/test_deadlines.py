"""Directive (EU) 2023/977 deadlines (node/deadlines.py): set by the sender, clamped by the
receiver, shown in the inbox, listed by `accord overdue` on both sides, moved by a delay notice,
ended by a reply or a reasoned refusal. Real nodes on the federation's fast clock: the tests
move it, never sleep."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from accord.v1 import message_pb2 as pb
from node import deadlines, wire
from node.clock import OffsetClock
from node.errors import InvalidRequest, Refused
from tests.harness import (
    Federation,
    RawExchange,
    add_user,
    complete,
    envelope_frame,
    liaison,
    member_key,
    node_send,
    until_delivered,
)
from tests.test_cli import Run, accord

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
OFFICER = "officer"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def request(*, to: list[str], urgent: bool, direct: bool) -> pb.MessageContent:
    content = liaison(to=to)
    content.urgency = pb.URGENCY_URGENT if urgent else pb.URGENCY_NORMAL
    content.directly_accessible = direct
    return content


@pytest.mark.parametrize(
    ("urgent", "direct", "span"),
    [
        (True, True, timedelta(hours=8)),
        (True, False, timedelta(days=3)),
        (False, True, timedelta(days=7)),
        (False, False, timedelta(days=7)),
    ],
)
def test_the_limit_follows_urgency_and_direct_access(
    urgent: bool, direct: bool, span: timedelta
) -> None:
    assert deadlines.limit(urgent=urgent, direct=direct) == span
    # The sender's node fills in the deadline from the request's creation...
    draft = wire.draft(request(to=[DE], urgent=urgent, direct=direct))
    _, meta = wire.complete(draft, message_id=_ID, sender=NL, now=T0, grant_until=T0)
    assert meta.reply_deadline == T0 + span
    # ...keeps an earlier one the author asked for, and refuses a later one.
    early = request(to=[DE], urgent=urgent, direct=direct)
    wire.set_time(early.reply_deadline, T0 + span / 2)
    _, meta = wire.complete(wire.draft(early), message_id=_ID, sender=NL, now=T0, grant_until=T0)
    assert meta.reply_deadline == T0 + span / 2
    late = request(to=[DE], urgent=urgent, direct=direct)
    wire.set_time(late.reply_deadline, T0 + span + timedelta(seconds=1))
    with pytest.raises(InvalidRequest, match="later than Directive"):
        wire.complete(wire.draft(late), message_id=_ID, sender=NL, now=T0, grant_until=T0)
    # The receiver counts from receipt and never allows more than the limit.
    received = T0 + timedelta(minutes=5)
    due = deadlines.receiver_deadline
    assert due(None, received, urgent=urgent, direct=direct) == received + span
    assert due(T0 + 2 * span, received, urgent=urgent, direct=direct) == received + span
    assert due(T0 + span / 2, received, urgent=urgent, direct=direct) == T0 + span / 2


_ID = "01890a5d-ac96-774b-bcce-b302099a8057"


def test_a_delay_moves_the_expected_date_and_only_a_reply_or_refusal_answers() -> None:
    deadline = T0 + timedelta(days=3)
    later = deadline + timedelta(days=2)
    p = deadlines.progress(deadline, [("DELAY_NOTICE", T0 + timedelta(days=1), later)])
    assert (p.expected, p.delayed, p.answered_at) == (later, True, None)
    assert not p.overdue(deadline + timedelta(days=1)) and p.overdue(later + timedelta(seconds=1))
    # A delay never brings the date forward; an answer stops the clock; lateness is measured
    # against the deadline itself.
    early = deadlines.progress(deadline, [("DELAY_NOTICE", T0, T0 + timedelta(hours=1))])
    assert early.expected == deadline
    answered = deadlines.progress(
        deadline, [("DELAY_NOTICE", T0, later), ("REFUSAL", deadline + timedelta(hours=1), None)]
    )
    assert answered.answer == "REFUSAL" and answered.on_time() is False
    assert not answered.overdue(later + timedelta(days=9))


@pytest.mark.parametrize(
    ("kind", "details", "missing"),
    [
        (pb.MESSAGE_TYPE_REFUSAL, {}, "states its grounds"),
        (pb.MESSAGE_TYPE_REFUSAL, {"refusal": pb.RefusalDetails(grounds="  ")}, "its grounds"),
        (pb.MESSAGE_TYPE_DELAY_NOTICE, {}, "states its reason"),
        (pb.MESSAGE_TYPE_DELAY_NOTICE, {"delay": pb.DelayDetails(reason="busy")}, "expected_by"),
    ],
)
def test_refusals_and_delay_notices_need_their_reasons(
    kind: pb.MessageType, details: dict[str, object], missing: str
) -> None:
    content = liaison(to=[NL], type_=kind)
    content.in_reply_to = _ID
    for name, value in details.items():
        getattr(content.liaison, name).CopyFrom(value)
    content = complete(content, sender=DE)
    with pytest.raises(Refused, match=missing):
        wire.decode(content.SerializeToString())
    content.ClearField("in_reply_to")
    with pytest.raises(Refused, match="in_reply_to is empty"):
        wire.decode(content.SerializeToString())


async def cli(fed: Federation, agency: str, *args: str | Path) -> Run:
    run = await accord(*args, "--home", fed.homes[agency], "--as", OFFICER)
    assert "Traceback" not in run.err, run.err
    return run


async def overdue(fed: Federation, agency: str) -> list[dict[str, object]]:
    run = await cli(fed, agency, "overdue", "--json")
    assert run.code == 0, run
    listed: list[dict[str, object]] = json.loads(run.out)
    return listed


async def inbox_row(fed: Federation, agency: str, message_id: str) -> dict[str, Any]:
    run = await cli(fed, agency, "inbox", "--json")
    (row,) = [m for m in json.loads(run.out) if m["message_id"] == message_id]
    assert isinstance(row, dict)
    return row


def answer(kind: pb.MessageType, to_request: str, **details: object) -> pb.MessageContent:
    content = liaison(to=[NL], type_=kind, text="answer")
    content.in_reply_to = to_request
    content.correlation_id = to_request
    for name, value in details.items():
        getattr(content.liaison, name).CopyFrom(value)
    return content


async def test_overdue_on_both_sides_delay_and_reply_on_a_fast_clock(fed3: Federation) -> None:
    fed = fed3
    clock = fed.clock
    assert isinstance(clock, OffsetClock)
    nl, de, fr = await fed.start_all()
    for node in (nl, de, fr):
        await add_user(node, OFFICER, "liaison_officer")
    sent = await node_send(nl, request(to=[DE, FR], urgent=True, direct=True))
    await until_delivered(nl, sent)
    stored = await de.store.get_message(sent.message_id, direction="in")
    assert stored is not None and stored.reply_deadline is not None
    assert stored.reply_deadline - stored.received_at <= timedelta(hours=8)

    row = await inbox_row(fed, DE, sent.message_id)
    assert row["status"] == "received" and 7 * 3600 < row["seconds_left"] <= 8 * 3600
    assert await overdue(fed, NL) == [] and await overdue(fed, DE) == []

    clock.advance(timedelta(hours=9))
    # Owed by DE and FR to NL; owed by each of them to NL from their side.
    owed_to_nl = await overdue(fed, NL)
    assert sorted((o["owed"], o["peer"]) for o in owed_to_nl) == [("to us", DE), ("to us", FR)]
    (owed_by_de,) = await overdue(fed, DE)
    assert (owed_by_de["owed"], owed_by_de["peer"], owed_by_de["message_id"]) == (
        "by us",
        NL,
        sent.message_id,
    )
    assert 3600 - 60 < float(owed_by_de["overdue_seconds"]) <= 3600 + 60  # type: ignore[arg-type]
    header, row_text = (await cli(fed, DE, "overdue")).out.splitlines()
    assert header.split()[:3] == ["OWED", "ID", "PEER"] and header.endswith("OVERDUE BY")
    assert row_text.split()[:4] == ["by", "us", sent.message_id, NL]
    assert row_text.split()[-1] == "1h00m"
    table = (await cli(fed, DE, "inbox")).out.splitlines()[1].split()
    assert table[9].startswith("-") and table[10] == "OVERDUE"  # LEFT, STATUS

    # DE gives a reasoned delay notice: the answer is now expected in two days.
    until = clock.now() + timedelta(days=2)
    delay = answer(
        pb.MESSAGE_TYPE_DELAY_NOTICE,
        sent.message_id,
        delay=pb.DelayDetails(reason="needs a judicial order", expected_by=_ts(until)),
    )
    await until_delivered(de, await node_send(de, delay))
    # The notice is DE's: FR still owes its answer.
    assert [o["peer"] for o in await overdue(fed, NL)] == [FR]
    assert await overdue(fed, DE) == []
    row = await inbox_row(fed, DE, sent.message_id)
    assert row["status"] == "delayed" and row["expected_by"] is not None

    clock.advance(timedelta(days=2, hours=1))
    (late,) = [o for o in await overdue(fed, NL) if o["peer"] == DE]
    assert late["delayed"] is True

    reply = answer(pb.MESSAGE_TYPE_REPLY, sent.message_id)
    replied = await node_send(de, reply)
    await until_delivered(de, replied)
    assert [o["peer"] for o in await overdue(fed, NL)] == [FR]
    assert await overdue(fed, DE) == []
    # Both sides record when it was answered: DE when it sent the reply, NL when it got it.
    row = await inbox_row(fed, DE, sent.message_id)
    assert row["status"] == "answered" and row["answered_at"] is not None
    assert row["seconds_left"] is None
    answers = await nl.store.answers([sent.message_id])
    got = [(a.peer, a.type) for a in answers[sent.message_id]]
    assert got == [(DE, "DELAY_NOTICE"), (DE, "REPLY")]

    # A refusal needs grounds; with them it answers FR's part.
    officer = await fr.access_store.user(OFFICER)
    assert officer is not None
    bare = wire.draft(answer(pb.MESSAGE_TYPE_REFUSAL, sent.message_id))
    with pytest.raises(Refused, match="grounds"):
        await fr.operations.send(officer, bare)
    refusal = answer(
        pb.MESSAGE_TYPE_REFUSAL,
        sent.message_id,
        refusal=pb.RefusalDetails(grounds="disproportionate (Art. 6(1)(c))"),
    )
    await until_delivered(fr, await fr.operations.send(officer, wire.draft(refusal)))
    assert await overdue(fed, NL) == [] and await overdue(fed, FR) == []

    # A third agency cannot answer a request it was not asked: a REPLY from FR (crafted: FR's
    # own node refuses to answer what it never received) to NL's request to DE alone leaves
    # it owed by DE.
    only_de = await node_send(nl, request(to=[DE], urgent=True, direct=True))
    await until_delivered(nl, only_de)
    crafted = complete(answer(pb.MESSAGE_TYPE_REPLY, only_de.message_id), sender=FR)
    async with RawExchange(fed, as_agency=FR, to=nl) as stream:
        frame = envelope_frame(crafted.SerializeToString(), member_key(fed, FR))
        receipt = pb.ReceiptContent.FromString((await stream.send(frame)).content)
    assert receipt.status == pb.RECEIPT_STATUS_ACCEPTED
    clock.advance(timedelta(hours=9))
    assert [(o["peer"], o["message_id"]) for o in await overdue(fed, NL)] == [
        (DE, only_de.message_id)
    ]


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


async def test_the_receiver_clamps_a_deadline_the_rule_does_not_allow(fed2: Federation) -> None:
    fed = fed2
    _, de = await fed.start_all()
    content = complete(request(to=[DE], urgent=True, direct=False), sender=NL)
    wire.set_time(content.reply_deadline, datetime.now(UTC) + timedelta(days=30))
    async with RawExchange(fed, as_agency=NL, to=de) as stream:
        receipt = await stream.send(
            envelope_frame(content.SerializeToString(), member_key(fed, NL))
        )
    assert pb.ReceiptContent.FromString(receipt.content).status == pb.RECEIPT_STATUS_ACCEPTED
    stored = await de.store.get_message(content.message_id, direction="in")
    assert stored is not None and stored.reply_deadline is not None
    assert stored.reply_deadline == stored.received_at + timedelta(days=3)


async def test_the_cli_refuses_a_later_deadline_and_a_refusal_without_grounds(
    fed2: Federation, tmp_short: Path
) -> None:
    fed = fed2
    for node in await fed.start_all():
        await add_user(node, OFFICER, "liaison_officer")
    body = tmp_short / "body.json"
    body.write_text('{"subject": "Request", "text": "Who owns this car?"}')
    common = ("send", "--to", DE, "--purpose", "missing-persons", "--body", body,
              "--tlp", "green", "--handling", "H0", "--retention-days", "30")  # fmt: skip
    late = (datetime.now(UTC) + timedelta(days=4)).isoformat()
    run = await cli(fed, NL, *common, "--type", "request_info", "--urgent", "--reply-by", late)
    assert run.code == 2 and "later than Directive (EU) 2023/977 allows" in run.err, run
    run = await cli(fed, NL, *common, "--type", "request_info", "--urgent", "--direct")
    assert run.code == 0, run
    run = await cli(fed, DE, *common[:2], NL, *common[3:], "--type", "refusal",
                    "--reply-to", run.out.strip())  # fmt: skip
    assert run.code == 2 and "a REFUSAL states its grounds" in run.err, run
    assert len(run.err.strip().splitlines()) == 1
    rows = await fed.nodes[NL].store.list_messages(direction="out")
    assert len(rows) == 1  # only the request that was allowed
