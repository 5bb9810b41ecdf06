"""Merkle trees as RFC 6962 and RFC 9162 (section 2.1) define them, for batch signatures and
the audit log.

A leaf is SHA-256(0x00 || data), an inner node SHA-256(0x01 || left || right), and the tree of
n leaves is split at the largest power of two smaller than n (MTH). Proofs are lists of 32-byte
hashes in RFC 9162's order (from the leaf up); their checks follow RFC 9162's verification
algorithms step for step, so an auditor can redo them by hand (docs/audit.md).

A growing log keeps two things: its right edge (`Frontier`, one hash per set bit of the size:
an append costs O(log n) and the root needs no old leaf), and every complete subtree it has
built, keyed by (level, index): node (l, i) is the root of leaves [i * 2**l, (i + 1) * 2**l).
Every proof element is either such a node or a fold of O(log n) of them along the right edge,
so a proof costs O(log n) lookups, asked of a `NodeReader` in one call (a store answers it with
one query). A store read asynchronously does the same in three steps: `inclusion_plan` or
`consistency_plan`, one query for `plan_ids`, `assemble`.

Batch signatures (node/signing.py) carry an item's audit path as 33-byte steps: a side byte
(0x00: the sibling is on the left, 0x01: on the right) and the sibling's hash. Building the
levels pairwise with an unpaired last node moving up unchanged gives the same tree as the MTH
split, so the steps are the RFC 9162 path with the sides written out (`batch`,
`inclusion_steps`, `root_from_steps`): a check needs no sizes, and each step is one
`openssl dgst -sha256 -binary`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH of the empty tree
STEP_SIZE = 1 + HASH_SIZE  # side byte + sibling hash
MAX_STEPS = 32  # a batch of up to 2**32 items; anything longer is not a proof

# (level, index): the root of leaves [index << level, (index + 1) << level)
NodeId = tuple[int, int]

_sha256 = hashlib.sha256


class NodeReader(Protocol):
    """The hashes of complete subtrees of a log, in the order asked. Raises LookupError when one
    is not stored (the log is smaller than the caller thinks)."""

    def __call__(self, ids: Sequence[NodeId], /) -> Sequence[bytes]: ...


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of consecutive perfect subtrees of decreasing size along a right edge (a
    `range_ids` decomposition): MTH splits off the largest one first."""
    node = hashes[-1]
    for left in reversed(hashes[:-1]):
        node = _sha256(b"\x01" + left + node).digest()
    return node


class Frontier:
    """The right edge of a growing tree: the roots of the perfect subtrees that the binary
    decomposition of its size gives, the largest (leftmost) first."""

    __slots__ = ("_edge", "_size")

    def __init__(self, size: int = 0, edge: Iterable[bytes] = ()) -> None:
        hashes = list(edge)
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} edge hashes")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("edge hashes are 32 bytes")
        self._size = size
        self._edge = hashes

    @classmethod
    def restore(cls, reader: NodeReader, size: int) -> Frontier:
        """The edge of a stored tree of `size` leaves, read from its complete subtrees."""
        return cls(size, reader(range_ids(0, size)) if size else ())

    @property
    def size(self) -> int:
        return self._size

    @property
    def edge(self) -> tuple[bytes, ...]:
        return tuple(self._edge)

    def copy(self) -> Frontier:
        return Frontier(self._size, self._edge)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash: each set low bit of the old size merges one edge node (O(log n),
        one merge on average)."""
        edge = self._edge
        size = self._size
        self._size = size + 1
        while size & 1:
            leaf = _sha256(b"\x01" + edge.pop() + leaf).digest()
            size >>= 1
        edge.append(leaf)

    def append_nodes(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """`append`, returning the complete subtrees the leaf completes as (level, index, hash),
        the leaf itself first: what a store of subtrees keeps for later proofs."""
        edge = self._edge
        index = size = self._size
        self._size = size + 1
        nodes = [(0, index, leaf)]
        level = 0
        while size & 1:
            leaf = _sha256(b"\x01" + edge.pop() + leaf).digest()
            size >>= 1
            level += 1
            nodes.append((level, index >> level, leaf))
        edge.append(leaf)
        return nodes

    def root(self) -> bytes:
        return fold(self._edge) if self._edge else EMPTY_ROOT


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH over leaf hashes."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
    return frontier.root()


class MemoryNodes:
    """Every complete subtree of a growing tree, in a dict: a `NodeReader` for tests and for
    small trees (a log keeps its nodes in its store)."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.frontier = Frontier()
        self._nodes: dict[NodeId, bytes] = {}
        for leaf in leaf_hashes:
            self.append(leaf)

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, leaf: bytes) -> None:
        for level, index, node in self.frontier.append_nodes(leaf):
            self._nodes[level, index] = node

    def __call__(self, ids: Sequence[NodeId], /) -> list[bytes]:
        return [self._nodes[i] for i in ids]

    def __len__(self) -> int:
        return len(self._nodes)


def range_ids(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees, largest first, whose fold is MTH of leaves [start, end): a range
    that starts on a boundary of its own size rounded up to a power of two, as every proof
    element and every root is."""
    ids = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise ValueError(f"leaves [{start}, {end}) are not a subtree of an RFC 6962 tree")
        ids.append((level, start >> level))
        start += 1 << level
    return ids


def _split(size: int) -> int:
    """The largest power of two smaller than size (> 1): where MTH splits."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """Which nodes make each element of PATH(index, D[size]) (RFC 9162 2.1.3.1), leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return [range_ids(a, b) for a, b in reversed(ranges)]


def consistency_plan(old: int, new: int) -> list[list[NodeId]]:
    """Which nodes make each element of PROOF(old, D[new]) (RFC 9162 2.1.4.1), in order."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} leaves to {new}")
    if old in (0, new):
        return []
    ranges = []
    lo, hi, whole = 0, new, True
    while old != hi:
        k = _split(hi - lo)
        if old - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole = False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        ranges.append((lo, hi))
    return [range_ids(a, b) for a, b in reversed(ranges)]


def plan_ids(plan: list[list[NodeId]]) -> list[NodeId]:
    """The nodes a plan needs, in the order `assemble` takes their hashes."""
    return [node for element in plan for node in element]


def assemble(plan: list[list[NodeId]], hashes: Sequence[bytes]) -> list[bytes]:
    """A proof from a plan and the hashes of `plan_ids(plan)`: how a store that is read
    asynchronously makes a proof (plan, fetch the ids in one query, assemble)."""
    if len(hashes) != sum(map(len, plan)):
        raise LookupError(f"a plan of {sum(map(len, plan))} nodes, {len(hashes)} hashes")
    out, at = [], 0
    for element in plan:
        out.append(fold(hashes[at : at + len(element)]))
        at += len(element)
    return out


def _proof(reader: NodeReader, plan: list[list[NodeId]]) -> list[bytes]:
    ids = plan_ids(plan)
    return assemble(plan, reader(ids) if ids else [])


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves."""
    return _proof(reader, inclusion_plan(index, size))


def consistency_proof(reader: NodeReader, old: int, new: int) -> list[bytes]:
    """The proof that the tree of `old` leaves is a prefix of the tree of `new` leaves."""
    return _proof(reader, consistency_plan(old, new))


def root_at(reader: NodeReader, size: int) -> bytes:
    """MTH of the first `size` leaves of a stored tree (any size it has reached)."""
    return fold(reader(range_ids(0, size))) if size else EMPTY_ROOT


def _well_formed(*hashes: bytes) -> bool:
    return all(len(h) == HASH_SIZE for h in hashes)


def _sides(index: int, size: int, count: int) -> list[int] | None:
    """The side of each of `count` proof elements (0: the sibling is on the left, 1: on the
    right), walked as RFC 9162 2.1.3.2 walks them, or None when that many elements cannot be a
    proof for leaf `index` of `size`."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    sides = []
    for _ in range(count):
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            sides.append(0)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sides.append(1)
        fn >>= 1
        sn >>= 1
    return sides if sn == 0 else None


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root that an inclusion proof leads to (RFC 9162 2.1.3.2), or None when the proof
    cannot be one for leaf `index` of `size` (wrong length, a malformed hash)."""
    steps = inclusion_steps(index, size, proof)
    if steps is None or len(leaf) != HASH_SIZE:
        return None
    return root_from_steps(leaf, steps, max_steps=len(proof))


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    return root_from_inclusion(leaf, index, size, proof) == root_hash


def verify_consistency(
    old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """RFC 9162 2.1.4.2: does the tree of `new` leaves with root `new_root` extend the tree of
    `old` leaves with root `old_root`? Equal sizes need equal roots and an empty proof; the
    empty tree (root SHA-256 of nothing) is a prefix of every tree."""
    if not 0 <= old <= new or not _well_formed(old_root, new_root, *proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = [old_root, *proof] if old & (old - 1) == 0 else list(proof)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# ---- audit paths as side-and-hash steps (batch signatures, evidence bundles) ----


def inclusion_steps(index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """An RFC 9162 inclusion proof with each element's side written out, or None when it
    cannot be a proof for leaf `index` of `size`."""
    sides = _sides(index, size, len(proof))
    if sides is None or not _well_formed(*proof):
        return None
    return b"".join(bytes([side]) + sibling for side, sibling in zip(sides, proof, strict=True))


def root_from_steps(leaf: bytes, steps: bytes, *, max_steps: int = MAX_STEPS) -> bytes | None:
    """The root that steps lead to from a leaf hash, or None when they are not well formed
    (a length that is not whole steps, too many steps, a side byte other than 0 or 1)."""
    if len(steps) % STEP_SIZE or len(steps) > max_steps * STEP_SIZE:
        return None
    node = leaf
    for at in range(0, len(steps), STEP_SIZE):
        side, sibling = steps[at], steps[at + 1 : at + STEP_SIZE]
        if side == 0:
            node = _sha256(b"\x01" + sibling + node).digest()
        elif side == 1:
            node = _sha256(b"\x01" + node + sibling).digest()
        else:
            return None
    return node


def batch(contents: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """The root over the contents' leaf hashes, and each content's audit path as steps. Levels
    are built pairwise; an unpaired last node moves up a level unchanged (no step is added for
    it), which is the MTH split seen from below."""
    if not contents:
        raise ValueError("a batch needs at least one item")
    levels = [[leaf_hash(c) for c in contents]]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append(
            [
                node_hash(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                for i in range(0, len(level), 2)
            ]
        )
    proofs = []
    for index in range(len(contents)):
        steps = []
        i = index
        for level in levels[:-1]:
            if i & 1:
                steps.append(b"\x00" + level[i - 1])
            elif i + 1 < len(level):
                steps.append(b"\x01" + level[i + 1])
            i >>= 1
        proofs.append(b"".join(steps))
    return levels[-1][0], proofs


class BoundaryNodes:
    """The complete subtrees of a tree built once, kept only where roots and consistency proofs
    between the given sizes need them: every node of level `coarse` and up, and every node in
    the 2**coarse-leaf blocks that hold the last leaf of one of the sizes. Any proof element
    below level `coarse` lies in such a block, because a proof between sizes m and n only
    descends below a subtree boundary along the paths to leaves m - 1 and n - 1."""

    def __init__(self, sizes: Iterable[int], *, coarse: int = 6) -> None:
        self.frontier = Frontier()
        self._coarse = coarse
        self._mask = (1 << coarse) - 1
        self._blocks = frozenset((size - 1) >> coarse for size in sizes if size > 0)
        self._nodes: dict[NodeId, bytes] = {}

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, leaf: bytes) -> None:
        index = self.frontier.size
        inside = (index >> self._coarse) in self._blocks
        if inside or index & self._mask == self._mask:  # a node of level >= coarse completes
            nodes = self._nodes
            for level, node_index, node in self.frontier.append_nodes(leaf):
                if inside or level >= self._coarse:
                    nodes[level, node_index] = node
        else:
            self.frontier.append(leaf)

    def __call__(self, ids: Sequence[NodeId], /) -> list[bytes]:
        return [self._nodes[i] for i in ids]

    def __len__(self) -> int:
        return len(self._nodes)
