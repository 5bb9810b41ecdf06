"""node.merkle against an independent, naive transcription of RFC 6962 / RFC 9162's recursive
definitions (below, slices and recursion only), against published test vectors, and against
the batch signatures of node.signing (and what main's own copy of the tree made before it went)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node import merkle, signing

# ---- the naive reference: RFC 9162 section 2.1, word for word ----


def naive_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def naive_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return naive_leaf(d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:])).digest()


def naive_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, d[:k]), naive_mth(d[k:])]
    return [*naive_path(m - k, d[k:]), naive_mth(d[:k])]


def naive_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, d[:k], b), naive_mth(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), naive_mth(d[:k])]


def naive_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return naive_subproof(m, d, True)


def data(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


DATA = data(70)
LEAVES = [merkle.leaf_hash(x) for x in DATA]
NODES = merkle.MemoryNodes(LEAVES)  # every complete subtree of the 70-leaf tree


def flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# ---- hashing and roots ----


def test_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.EMPTY_ROOT == hashlib.sha256(b"").digest() == merkle.root([])


@pytest.mark.parametrize("n", range(1, 71))
def test_root_of_every_size_matches_the_naive_mth(n: int) -> None:
    expected = naive_mth(DATA[:n])
    assert merkle.root(LEAVES[:n]) == expected
    assert merkle.root_at(NODES, n) == expected  # from stored subtrees of a larger tree


def test_frontier_root_matches_after_every_append() -> None:
    frontier = merkle.Frontier()
    for n in range(1, 130):
        frontier.append(merkle.leaf_hash(f"x{n}".encode()))
        assert frontier.size == n
        assert len(frontier.edge) == n.bit_count()
        assert frontier.root() == naive_mth([f"x{i}".encode() for i in range(1, n + 1)])


def test_append_nodes_returns_every_completed_subtree() -> None:
    frontier = merkle.Frontier()
    seen: dict[tuple[int, int], bytes] = {}
    for i, leaf in enumerate(LEAVES):
        nodes = frontier.append_nodes(leaf)
        assert nodes[0] == (0, i, leaf)
        for level, index, node in nodes:
            assert ((index + 1) << level) - 1 == i  # the node's last leaf is this one
            assert node == naive_mth(DATA[index << level : (index + 1) << level])
            seen[level, index] = node
    # every complete subtree of 70 leaves, each once: 70 + 35 + 17 + 8 + 4 + 2 + 1
    assert len(seen) == len(NODES) == 137
    assert frontier.root() == naive_mth(DATA)


def test_frontier_restores_from_stored_subtrees_and_continues() -> None:
    for size in (0, 1, 5, 32, 69):
        nodes = merkle.MemoryNodes(LEAVES[:size])
        restored = merkle.Frontier.restore(nodes, size)
        assert restored.edge == nodes.frontier.edge
        restored.append(LEAVES[size])
        assert restored.root() == naive_mth(DATA[: size + 1])


def test_frontier_refuses_an_edge_that_does_not_fit_its_size() -> None:
    with pytest.raises(ValueError, match="5 leaves has 2 edge hashes"):
        merkle.Frontier(5, [LEAVES[0]])
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.Frontier(1, [b"short"])
    with pytest.raises(ValueError):
        merkle.Frontier(-1, [])


def test_copy_is_independent() -> None:
    a = merkle.Frontier()
    a.append(LEAVES[0])
    b = a.copy()
    b.append(LEAVES[1])
    assert a.size == 1 and a.root() == LEAVES[0]
    assert b.root() == naive_mth(DATA[:2])


def test_a_missing_node_is_a_lookup_error() -> None:
    small = merkle.MemoryNodes(LEAVES[:4])
    with pytest.raises(LookupError):
        merkle.inclusion_proof(small, 0, 8)


def test_a_proof_in_three_steps_as_an_asynchronous_store_makes_it() -> None:
    for plan, expected in (
        (merkle.inclusion_plan(5, 70), naive_path(5, DATA)),
        (merkle.consistency_plan(13, 70), naive_proof(13, DATA)),
    ):
        ids = merkle.plan_ids(plan)
        assert len(ids) == len(set(ids))  # one query, no node twice
        assert merkle.assemble(plan, NODES(ids)) == expected
        with pytest.raises(LookupError):
            merkle.assemble(plan, NODES(ids)[:-1])


def test_range_ids_refuses_ranges_that_are_no_subtree() -> None:
    assert merkle.range_ids(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert merkle.range_ids(8, 11) == [(1, 4), (0, 10)]
    with pytest.raises(ValueError, match="not a subtree"):
        merkle.range_ids(1, 5)


# ---- inclusion proofs ----


@pytest.mark.parametrize("n", range(1, 71))
def test_inclusion_proof_of_every_leaf_matches_the_naive_path(n: int) -> None:
    root = naive_mth(DATA[:n])
    for i in range(n):
        expected = naive_path(i, DATA[:n])
        assert merkle.inclusion_proof(NODES, i, n) == expected
        assert merkle.verify_inclusion(LEAVES[i], i, n, expected, root)


def true_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """Whether the naive definitions agree that this is a proof of this leaf (a tampered probe
    may by chance state another true fact, which a checker must then accept)."""
    return (
        0 <= index < size <= len(DATA)
        and leaf == LEAVES[index]
        and proof == naive_path(index, DATA[:size])
        and root == naive_mth(DATA[:size])
    )


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 31, 33, 70])
def test_tampered_inclusion_proofs_are_rejected(n: int) -> None:
    """The probes of transparency-dev/merkle's proof tests, for every leaf of these sizes."""
    root = naive_mth(DATA[:n])
    for i in range(n):
        leaf, proof = LEAVES[i], naive_path(i, DATA[:n])
        probes = [
            ("index - 1", leaf, i - 1, n, proof, root),
            ("index + 1", leaf, i + 1, n, proof, root),
            ("index ^ 2", leaf, i ^ 2, n, proof, root),
            ("size * 2", leaf, i, n * 2, proof, root),
            ("size // 2", leaf, i, n // 2, proof, root),
            ("wrong leaf", merkle.leaf_hash(b"wrong"), i, n, proof, root),
            ("short leaf", b"WrongLeaf", i, n, proof, root),
            ("empty root", leaf, i, n, proof, merkle.EMPTY_ROOT),
            ("flipped root", leaf, i, n, proof, flip(root)),
            ("trailing root", leaf, i, n, [*proof, root], root),
            ("trailing garbage", leaf, i, n, [*proof, b""], root),
            ("preceding root", leaf, i, n, [root, *proof], root),
        ]
        for j in range(len(proof)):
            changed = [*proof[:j], flip(proof[j]), *proof[j + 1 :]]
            probes.append((f"flipped proof[{j}]", leaf, i, n, changed, root))
        if proof:
            probes.append(("removed last", leaf, i, n, proof[:-1], root))
        if len(proof) > 1:
            probes.append(("inserted", leaf, i, n, [proof[0], LEAVES[0], *proof[1:]], root))
        for desc, lf, index, size, bad, r in probes:
            if merkle.verify_inclusion(lf, index, size, bad, r):
                assert true_inclusion(lf, index, size, bad, r), (desc, i, n)


def test_inclusion_rejects_nonsense_positions() -> None:
    assert merkle.root_from_inclusion(LEAVES[0], 0, 0, []) is None
    assert merkle.root_from_inclusion(LEAVES[0], 1, 1, []) is None
    assert merkle.root_from_inclusion(LEAVES[0], -1, 1, []) is None
    assert merkle.root_from_inclusion(LEAVES[0], 0, 1, []) == LEAVES[0]
    with pytest.raises(ValueError):
        merkle.inclusion_plan(3, 3)


# ---- consistency proofs ----


@pytest.mark.parametrize("n", range(1, 71))
def test_consistency_proof_of_every_prefix_matches_the_naive_proof(n: int) -> None:
    new_root = naive_mth(DATA[:n])
    for m in range(0, n + 1):
        expected = naive_proof(m, DATA[:n]) if m else []
        assert merkle.consistency_proof(NODES, m, n) == expected, (m, n)
        assert merkle.verify_consistency(m, n, expected, naive_mth(DATA[:m]), new_root), (m, n)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 70])
def test_tampered_consistency_proofs_are_rejected(n: int) -> None:
    new_root = naive_mth(DATA[:n])
    for m in range(1, n):
        old_root = naive_mth(DATA[:m])
        proof = naive_proof(m, DATA[:n])
        # The probes of transparency-dev/merkle's tests. Not "new - 1": hashes do not bind a
        # tree's size (from leaf 0, trees of 3 and 4 leaves have the same shape), which is
        # why a checkpoint signs the size beside the root.
        probes: list[tuple[str, int, int, list[bytes], bytes, bytes]] = [
            ("empty proof", m, n, [], old_root, new_root),
            ("old + 1", m + 1, n, proof, old_root, new_root),
            ("old - 1", m - 1, n, proof, old_root, new_root),
            ("new * 2", m, n * 2, proof, old_root, new_root),
            ("new // 2", m, n // 2, proof, old_root, new_root),
            ("wrong old root", m, n, proof, flip(old_root), new_root),
            ("wrong new root", m, n, proof, old_root, flip(new_root)),
            ("swapped roots", m, n, proof, new_root, old_root),
            ("trailing old root", m, n, [*proof, old_root], old_root, new_root),
            ("trailing new root", m, n, [*proof, new_root], old_root, new_root),
            ("preceding old root", m, n, [old_root, *proof], old_root, new_root),
            ("preceding garbage", m, n, [b"", *proof], old_root, new_root),
            ("truncated", m, n, proof[:-1], old_root, new_root),
        ]
        for i in range(len(proof)):
            changed = [*proof[:i], flip(proof[i], 4), *proof[i + 1 :]]
            probes.append((f"flipped proof[{i}]", m, n, changed, old_root, new_root))
        for desc, old, new, bad, r1, r2 in probes:
            if merkle.verify_consistency(old, new, bad, r1, r2):
                # only a probe that by chance states another true fact may pass
                assert 0 < old < new <= len(DATA), (desc, m, n)
                assert naive_proof(old, DATA[:new]) == bad, (desc, m, n)
                assert (naive_mth(DATA[:old]), naive_mth(DATA[:new])) == (r1, r2), (desc, m, n)


def test_consistency_edge_cases() -> None:
    r1, r3 = naive_mth(DATA[:1]), naive_mth(DATA[:3])
    assert merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    assert merkle.verify_consistency(0, 3, [], merkle.EMPTY_ROOT, r3)
    assert not merkle.verify_consistency(0, 3, [], r1, r3)  # size 0 has one root
    assert not merkle.verify_consistency(0, 3, [r1], merkle.EMPTY_ROOT, r3)
    assert merkle.verify_consistency(3, 3, [], r3, r3)
    assert not merkle.verify_consistency(3, 3, [], r1, r3)
    assert not merkle.verify_consistency(3, 3, [r1], r3, r3)
    assert not merkle.verify_consistency(3, 1, [], r3, r1)  # time travel
    assert not merkle.verify_consistency(-1, 3, [], r3, r3)
    with pytest.raises(ValueError):
        merkle.consistency_plan(4, 3)


# ---- published test vectors ----
# From transparency-dev/merkle, proof/verify_test.go (the RFC 6962 vectors of the Certificate
# Transparency reference implementation): eight leaves, the root of each prefix, and proofs.
# Inclusion vectors number leaves from 1 there; here from 0.

VECTOR_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
VECTOR_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
VECTOR_INCLUSION = [  # (leaf index from 0, tree size, proof)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
VECTOR_CONSISTENCY = [  # (old size, new size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


def test_published_vectors() -> None:
    leaves = [merkle.leaf_hash(x) for x in VECTOR_LEAVES]
    nodes = merkle.MemoryNodes(leaves)
    for n in range(1, 9):
        assert merkle.root(leaves[:n]) == VECTOR_ROOTS[n - 1]
        assert merkle.root_at(nodes, n) == VECTOR_ROOTS[n - 1]
    for index, size, hexes in VECTOR_INCLUSION:
        proof = [bytes.fromhex(h) for h in hexes]
        assert merkle.inclusion_proof(nodes, index, size) == proof
        assert merkle.verify_inclusion(leaves[index], index, size, proof, VECTOR_ROOTS[size - 1])
    for old, new, hexes in VECTOR_CONSISTENCY:
        proof = [bytes.fromhex(h) for h in hexes]
        assert merkle.consistency_proof(nodes, old, new) == proof
        assert merkle.verify_consistency(
            old, new, proof, VECTOR_ROOTS[old - 1], VECTOR_ROOTS[new - 1]
        )


# ---- side-and-hash steps, as batch signatures carry them ----


@pytest.mark.parametrize("n", range(1, 71))
def test_steps_are_the_rfc_path_with_sides(n: int) -> None:
    root, proofs = merkle.batch(DATA[:n])
    assert root == naive_mth(DATA[:n])
    for i, steps in enumerate(proofs):
        path = naive_path(i, DATA[:n])
        assert merkle.inclusion_steps(i, n, path) == steps
        assert [steps[at + 1 : at + 33] for at in range(0, len(steps), 33)] == path
        assert merkle.root_from_steps(LEAVES[i], steps) == root


# SHA-256 of root + every proof of a batch of DATA[:n], as node/envelope.py's own Merkle code
# (replaced by node.merkle) made them: the batches a node signs are byte for byte what it
# signed before.
BEFORE = {
    2: "40b9d9622a365b1c7cc85c9dffa304dbf38dfdb692868d1fa4e45edf6a392927",
    3: "ab15e01efebf87cb49298ad5fd7570ac37076bd6d61817460cb1e96dc7ae3ab4",
    5: "6ed5083066ab893fb874d6936addfcc188069337b0c56ca38dec3878c82e89b6",
    8: "0a6ac8cc5d9c03a0ff863262c8f942bceb01ee6872f408d8c8cc33e20a69b243",
    13: "cea4394af1cca6adc93e0ecca12874f9872f178e1a34256e600c2dc9706c5fb1",
    33: "893b117858df05b5998cffd99ff025d43d40fcde9bedd99d478b29981335c8ca",
}


def test_batch_proofs_are_those_signing_puts_in_a_batch() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    for n, before in BEFORE.items():
        contents = DATA[:n]
        root, proofs = merkle.batch(contents)
        assert hashlib.sha256(root + b"".join(proofs)).hexdigest() == before
        for domain in (signing.ENVELOPE, signing.RECEIPT):
            signed = signing.sign_batch(key, contents, domain)
            assert [proof for _, proof in signed] == proofs
            for c, proof in zip(contents, proofs, strict=True):
                assert signing.signed_bytes(c, proof, domain) == domain.root_prefix + root


def test_malformed_steps_are_refused_as_signing_refuses_them() -> None:
    _, proofs = merkle.batch(DATA[:5])
    good = proofs[2]
    bad = [
        good[:-1],  # not whole steps
        b"\x02" + good[1:],  # a side that is neither left nor right
        good * 11,  # 33 steps
    ]
    for steps in bad:
        assert merkle.root_from_steps(LEAVES[2], steps) is None
        assert signing.signed_bytes(DATA[2], steps, signing.ENVELOPE) is None
    assert merkle.batch(DATA[:1]) == (LEAVES[0], [b""])
    with pytest.raises(ValueError):
        merkle.batch([])


def test_inclusion_steps_refuse_a_path_that_does_not_fit() -> None:
    path = naive_path(3, DATA[:8])
    assert merkle.inclusion_steps(3, 8, path[:-1]) is None
    assert merkle.inclusion_steps(3, 8, [*path, path[0]]) is None
    assert merkle.inclusion_steps(8, 8, path) is None
    assert merkle.inclusion_steps(3, 8, [b"short", *path[1:]]) is None


@pytest.mark.parametrize("coarse", [0, 1, 2, 3])
def test_boundary_nodes_prove_everything_between_their_sizes(coarse: int) -> None:
    """Kept sparsely, yet every root and consistency proof between the sizes comes out as
    from the full set of subtrees."""
    sizes = [1, 5, 6, 16, 17, 31, 40, 64, 70]
    sparse = merkle.BoundaryNodes(sizes, coarse=coarse)
    for leaf in LEAVES:
        sparse.append(leaf)
    assert sparse.size == 70 and sparse.frontier.root() == naive_mth(DATA)
    for m in sizes:
        assert merkle.root_at(sparse, m) == naive_mth(DATA[:m])
        for n in sizes:
            if m <= n:
                assert merkle.consistency_proof(sparse, m, n) == naive_proof(m, DATA[:n])
    if coarse == 3:
        assert len(sparse) < len(NODES)  # sparse indeed
        with pytest.raises(KeyError):
            merkle.root_at(sparse, 43)  # a size it was not asked to keep
