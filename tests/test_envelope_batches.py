"""Envelopes signed a batch at a time: sends that start together share one signature over a
Merkle root, each envelope with its audit path, and each still verifies alone with the
sender's certificate: at the receiver, in a forward to a third agency, and in `accord show`
(docs/evidence.md)."""

from __future__ import annotations

import asyncio
import sqlite3

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import federation_pb2
from accord.v1 import message_pb2 as pb
from node.app import Node
from node.signing import (
    ENVELOPE,
    RECEIPT,
    BatchSigner,
    Signer,
    digest,
    sign,
    sign_batch,
    signed_bytes,
    verify,
    verify_signed,
)
from node.wire import parse_receipt
from tests.harness import (
    Federation,
    RawExchange,
    batch_receipts,
    complete,
    configure,
    incident,
    liaison,
    member_key,
    node_send,
    open_agreement,
    until_delivered,
    wait_for,
)

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
KEY = ec.generate_private_key(ec.SECP256R1())
PURPOSE = "serious-crime-investigation"


def contents(n: int) -> list[bytes]:
    return [f"message {i}".encode() * 9 for i in range(n)]


@pytest.mark.parametrize("n", [2, 3, 5, 8, 9, 64, 513])
def test_every_envelope_of_a_batch_verifies_alone(n: int) -> None:
    signed = sign_batch(KEY, contents(n), ENVELOPE)
    assert len({signature for signature, _ in signed}) == 1
    for content, (signature, proof) in zip(contents(n), signed, strict=True):
        assert verify(KEY.public_key(), content, signature, ENVELOPE, proof)
        assert not verify_signed(
            KEY.public_key(), content, signature
        )  # over the root, not the content


def test_forged_envelopes_do_not_verify() -> None:
    batch = contents(5)
    signed = sign_batch(KEY, batch, ENVELOPE)
    signature, proof = signed[3]
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    flipped = bytes([proof[0] ^ 1]) + proof[1:]  # the sibling on the other side
    assert not verify(KEY.public_key(), batch[3] + b"x", signature, ENVELOPE, proof)
    assert not verify(KEY.public_key(), batch[2], signature, ENVELOPE, proof)  # another's path
    assert not verify(KEY.public_key(), batch[3], signature, ENVELOPE, flipped)
    assert not verify(KEY.public_key(), batch[3], signature, ENVELOPE, proof[:-1])  # malformed
    assert not verify(KEY.public_key(), batch[3], signature, ENVELOPE, b"\x02" + proof[1:])
    assert not verify(other, batch[3], signature, ENVELOPE, proof)


def test_envelope_and_receipt_roots_cannot_stand_in_for_each_other() -> None:
    """The same node key signs its envelopes and its receipts: a root signed for one kind must
    never verify as the other, nor as an item signed alone."""
    batch = contents(4)
    env_signature, env_proof = sign_batch(KEY, batch, ENVELOPE)[1]
    rec_signature, rec_proof = sign_batch(KEY, batch, RECEIPT)[1]
    assert not verify(KEY.public_key(), batch[1], env_signature, RECEIPT, env_proof)
    assert not verify(KEY.public_key(), batch[1], rec_signature, ENVELOPE, rec_proof)
    root = signed_bytes(batch[1], env_proof, ENVELOPE)
    assert root is not None and root.startswith(ENVELOPE.root_prefix)
    assert verify_signed(KEY.public_key(), root, env_signature)  # genuine, but over a root
    assert not verify(KEY.public_key(), root, env_signature, ENVELOPE, b"")
    assert not verify(
        KEY.public_key(), RECEIPT.root_prefix + b"x", sign(KEY, b"x", ENVELOPE), ENVELOPE, b""
    )


async def test_sends_in_the_same_turn_are_signed_once_and_a_lone_send_alone() -> None:
    signer = BatchSigner(Signer(KEY))
    together = await asyncio.gather(*(signer.sign(c, recipients=[DE, FR]) for c in contents(6)))
    assert signer.batches == 1 and signer.signed == 6
    assert len({signature for signature, _ in together}) == 1
    ((signature, proof),) = [await signer.sign(b"alone", recipients=[DE])]
    assert proof == b"" and verify_signed(KEY.public_key(), b"alone", signature)


async def test_a_batch_holds_only_sends_to_the_same_agencies() -> None:
    """An audit path holds hashes of the other envelopes of its batch: an agency must not be
    shown even the hash of a message that was not sent to it."""
    signer = BatchSigner(Signer(KEY))
    to_de, to_both, to_both_again, to_fr = await asyncio.gather(
        signer.sign(b"a", recipients=[DE]),
        signer.sign(b"b", recipients=[DE, FR]),
        signer.sign(b"c", recipients=[FR, DE]),  # the same agencies, in another order
        signer.sign(b"d", recipients=[FR]),
    )
    assert signer.batches == 3
    assert to_both[0] == to_both_again[0] and to_both[1]
    assert to_de[1] == b"" and to_fr[1] == b""  # each alone in its batch


async def test_a_caller_that_stops_waiting_does_not_hold_up_its_batch() -> None:
    signer = BatchSigner(Signer(KEY))
    first = signer.sign(b"given up", recipients=[DE])
    second = signer.sign(b"still wanted", recipients=[DE])
    first.cancel()
    signature, proof = await second
    assert verify(KEY.public_key(), b"still wanted", signature, ENVELOPE, proof)


async def test_concurrent_sends_arrive_batch_signed_and_stored_with_their_paths(
    fed3: Federation,
) -> None:
    nl, de, _fr = await fed3.start_all()
    sent = await asyncio.gather(*(node_send(nl, incident(to=[DE])) for _ in range(30)))

    await until_delivered(nl, *sent)
    nl_key = member_key(fed3, NL).public_key()
    out_signatures = set()
    for s in sent:
        mine = await nl.store.get_message(s.message_id, direction="out")
        theirs = await de.store.get_message(s.message_id, sender=NL, direction="in")
        assert mine is not None and theirs is not None
        assert (theirs.signature, theirs.signature_proof) == (mine.signature, mine.signature_proof)
        assert mine.signature_proof  # 30 sends started together: signed as a batch
        assert verify(nl_key, s.content, theirs.signature, ENVELOPE, theirs.signature_proof or b"")
        out_signatures.add(mine.signature)
    assert len(out_signatures) < len(sent)


async def test_an_envelope_whose_path_is_forged_is_refused_and_the_rest_accepted(
    fed3: Federation,
) -> None:
    _nl, de, _fr = await fed3.start_all()
    batch = [complete(incident(to=[DE]), sender=NL).SerializeToString() for _ in range(6)]
    stray = complete(incident(to=[DE]), sender=NL).SerializeToString()  # in no signed batch
    signed = sign_batch(member_key(fed3, NL), batch, ENVELOPE)
    frame = federation_pb2.EnvelopeBatch()
    for i, (content, (signature, proof)) in enumerate(zip(batch, signed, strict=True)):
        sent_proof = b"\x01" + bytes(32) + proof[33:] if i == 2 else proof  # a false sibling
        sent_content = stray if i == 4 else content  # other content under this path
        frame.envelopes.add(content=sent_content, signature=signature, proof=sent_proof)
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        receipts = await batch_receipts(raw, frame.SerializeToString(), expect=6)
    infos = [parse_receipt(r.content) for r in receipts]
    assert [i.reason_code for i in infos] == ["", "", "BAD_SIGNATURE", "", "BAD_SIGNATURE", ""]
    assert [i.final for i in infos] == [True, True, False, True, False, True]
    assert await de.store.count("messages") == 4
    assert await de.store.count("rejections") == 0  # a bad signature decides nothing
    assert infos[4].content_sha256 == digest(stray)


async def test_a_forward_of_a_batch_signed_message_verifies_at_the_third_agency(
    fed3: Federation,
) -> None:
    """The forward carries the original envelope with its path; FR checks NL's signature on it
    with NL's certificate alone."""
    nl, de, fr = await fed3.start_all()
    draft = incident(to=[DE])
    sent = await asyncio.gather(*(node_send(nl, draft) for _ in range(4)))
    target = sent[1].message_id

    async def held() -> bool:
        return await de.store.get_message(target, sender=NL, direction="in") is not None

    await wait_for(held, timeout=8)
    original = await de.store.get_message(target, sender=NL, direction="in")
    assert original is not None and original.signature_proof
    forward = pb.MessageContent()
    forward.CopyFrom(draft)
    del forward.recipients[:]
    forward.recipients.append(FR)
    content = de.store.open_content(original)
    assert content is not None
    forward.forwarded.CopyFrom(
        pb.Envelope(content=content, signature=original.signature, proof=original.signature_proof)
    )
    outer = complete(forward, sender=DE).SerializeToString()
    env = federation_pb2.EnvelopeBatch()
    env.envelopes.add(content=outer, signature=sign(member_key(fed3, DE), outer, ENVELOPE))
    async with RawExchange(fed3, as_agency=DE, to=fr, batched=True) as raw:
        (receipt,) = await batch_receipts(raw, env.SerializeToString(), expect=1)
    # Past the signature, FR refuses it for want of NL's grant (test_purpose has the full flow).
    assert parse_receipt(receipt.content).reason_code == "ONWARD_TRANSFER_NOT_AUTHORISED"
    tampered = pb.Envelope(content=content, signature=original.signature, proof=b"\x00" + bytes(32))
    forward.forwarded.CopyFrom(tampered)
    outer = complete(forward, sender=DE).SerializeToString()
    env = federation_pb2.EnvelopeBatch()
    env.envelopes.add(content=outer, signature=sign(member_key(fed3, DE), outer, ENVELOPE))
    async with RawExchange(fed3, as_agency=DE, to=fr, batched=True) as raw:
        (receipt,) = await batch_receipts(raw, env.SerializeToString(), expect=1)
    info = parse_receipt(receipt.content)
    assert info.reason_code == "BAD_SIGNATURE"


# ---- protocol v1: both ends name what they check ---------------------------------------------


async def test_a_link_sends_nothing_to_a_node_that_does_not_name_the_v1_features(
    fed3: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose Hello names no features does not speak protocol v1: the link sends it
    nothing, says why, and tries again later (it may be upgraded)."""
    monkeypatch.setattr("node.transport.federation.FEATURES", ())  # what every server names
    nl, de, _fr = await fed3.start_all()
    sent = await node_send(nl, incident(to=[DE]))

    async def refused() -> bool:
        link = nl.links[DE]
        return link.state == "retrying" and "does not name envelope-proof/v1" in link.last_error

    await wait_for(refused, timeout=8)
    assert "receipt-proof/v1" in nl.links[DE].last_error
    assert "protocol v1" in nl.links[DE].last_error
    assert await de.store.get_message(sent.message_id, direction="in") is None
    assert [d.state for d in await nl.store.deliveries(sent.message_id)] == ["queued"]


@pytest.mark.parametrize(
    "features",
    [(), None, ("envelope-proof/v1",)],
    ids=["names-no-features", "no-features-metadata", "lacks-receipt-proof"],
)
async def test_a_stream_whose_caller_does_not_name_the_v1_features_is_refused(
    fed3: Federation, features: tuple[str, ...] | None
) -> None:
    _nl, de, _fr = await fed3.start_all()
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True, features=features) as raw:
        # Refused as it opens: read, not write (a write racing the refusal is reported by
        # grpcio as INTERNAL instead of the refusal's status).
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await raw.read()
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = failed.value.details() or ""
    assert "does not name" in details and "receipt-proof/v1" in details
    assert "protocol v1" in details
    assert await de.store.count("messages") == 0


async def test_batch_signing_keeps_the_order_sends_were_made_in(fed3: Federation) -> None:
    """Batches are per recipient set, but each send still queues in the order it was made, so
    the per-pair order holds for a peer that is in several sets."""
    nl, _de, _fr = await fed3.start_all()
    first, both, last = await asyncio.gather(
        node_send(nl, incident(to=[DE])),
        node_send(nl, incident(to=[DE, FR])),
        node_send(nl, incident(to=[DE])),
    )
    with sqlite3.connect(fed3.homes[NL] / "accord.db") as db:
        order = [
            r[0]
            for r in db.execute(
                "SELECT message_id FROM deliveries WHERE recipient = ? ORDER BY seq", (DE,)
            )
        ]
    assert order == [first.message_id, both.message_id, last.message_id]


async def test_a_message_held_for_approval_is_signed_alone(fed3: Federation) -> None:
    """A supervisor may still reject it: it must not leave even its hash in the audit path of
    an envelope that does go out."""
    fed3.authority.set_agreements(
        (open_agreement(fed3.agencies, fed3.now, approval_required=("REPLY>HIT_NOTIFICATION",)),),
        now=fed3.now,
    )
    fed3.reload_all()
    nl, de, _fr = await fed3.start_all()
    hit = await node_send(
        de, liaison(to=[NL], type_=pb.MESSAGE_TYPE_HIT_NOTIFICATION, purpose=PURPOSE, text="hit")
    )

    async def arrived() -> bool:
        return await nl.store.get_message(hit.message_id, direction="in") is not None

    await wait_for(arrived, timeout=8)
    reply = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose=PURPOSE, text="matched")
    reply.in_reply_to = hit.message_id
    plain = liaison(to=[DE], type_=pb.MESSAGE_TYPE_REPLY, purpose=PURPOSE, text="no hit")
    held, *others = await asyncio.gather(
        node_send(nl, reply), node_send(nl, plain), node_send(nl, plain)
    )
    assert held.pending_approval and not any(o.pending_approval for o in others)
    stored = await nl.store.get_message(held.message_id, direction="out")
    assert stored is not None and not stored.signature_proof
    assert verify_signed(member_key(fed3, NL).public_key(), held.content, stored.signature)
    for o in others:
        sent = await nl.store.get_message(o.message_id, direction="out")
        assert sent is not None and sent.signature_proof  # the other two, signed together


def inbound_refusals(node: Node) -> dict[str, float]:
    """What the node reported refusing from peers, by reason (its metrics)."""
    return {
        sample.labels["reason"]: sample.value
        for metric in node.metrics.registry.collect()
        if metric.name == "accord_refusals"
        for sample in metric.samples
        if sample.name == "accord_refusals_total" and sample.labels["direction"] == "inbound"
    }


async def test_a_copy_answered_before_is_not_reported_as_refused(fed3: Federation) -> None:
    """A resent copy whose signature is now mangled is answered with the receipt the first
    copy got; it must not also be reported (and audited) as a refusal."""
    _nl, de, _fr = await fed3.start_all()
    content = complete(incident(to=[DE]), sender=NL).SerializeToString()
    frame = federation_pb2.EnvelopeBatch()
    frame.envelopes.add(content=content, signature=sign(member_key(fed3, NL), content, ENVELOPE))
    frame.envelopes.add(content=content, signature=b"\x30\x00")  # the same, resent mangled
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        receipts = await batch_receipts(raw, frame.SerializeToString(), expect=2)
        again = await batch_receipts(raw, frame.SerializeToString(), expect=2)
    assert [parse_receipt(r.content).accepted for r in receipts + again] == [True] * 4
    assert inbound_refusals(de) == {}
    bad = complete(incident(to=[DE]), sender=NL).SerializeToString()
    lone = federation_pb2.EnvelopeBatch()
    lone.envelopes.add(content=bad, signature=b"\x30\x00")
    async with RawExchange(fed3, as_agency=NL, to=de, batched=True) as raw:
        (receipt,) = await batch_receipts(raw, lone.SerializeToString(), expect=1)
    assert parse_receipt(receipt.content).reason_code == "BAD_SIGNATURE"
    assert inbound_refusals(de) == {"BAD_SIGNATURE": 1.0}  # a real refusal still is


def signed_frame(fed: Federation, n: int = 12) -> bytes:
    key = member_key(fed, NL)
    frame = federation_pb2.EnvelopeBatch()
    for _ in range(n):
        content = complete(incident(to=[DE]), sender=NL).SerializeToString()
        frame.envelopes.add(content=content, signature=sign(key, content, ENVELOPE))
    return frame.SerializeToString()


async def test_sends_signed_together_are_at_most_delivery_sign_batch(fed3: Federation) -> None:
    configure(fed3.homes[NL], "delivery", sign_batch=2)
    nl, _de, _fr = await fed3.start_all()
    sent = await asyncio.gather(*(node_send(nl, incident(to=[DE])) for _ in range(6)))
    signatures = set()
    for s in sent:
        stored = await nl.store.get_message(s.message_id, direction="out")
        assert stored is not None and stored.signature_proof  # each signed with another
        signatures.add(stored.signature)
    assert len(signatures) == 3
