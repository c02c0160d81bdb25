"""Xet hashes (Xet protocol specification, "Hashing" and "CAS API: converting hashes to strings").

All hashes are 32 raw bytes. The string form used in URLs and JSON is NOT the plain hex of the bytes:
each 8-byte group is read as a little-endian u64 and printed as 16 hex digits.

* chunk hash: blake3 keyed with ``DATA_KEY`` over the chunk's bytes;
* xorb hash: the root of the aggregated merkle tree over (chunk hash, length) pairs, whose internal
  nodes are blake3 keyed with ``INTERNAL_NODE_KEY`` over lines ``"{hash} : {length}\\n"``; a node
  closes after at least 2 children at a child whose hash is 0 mod 4, or at 9 children;
* file hash: the same root, then blake3 keyed with 32 zero bytes;
* term verification hash: blake3 keyed with ``VERIFICATION_KEY`` over the raw chunk hashes of the range.
"""

from __future__ import annotations

from collections.abc import Sequence

from blake3 import blake3

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)  # fmt: skip
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)  # fmt: skip
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)  # fmt: skip
ZERO_KEY = bytes(32)
HASH_LEN = 32
MEAN_BRANCHING = 4
MAX_GROUP = 2 * MEAN_BRANCHING + 1
# A chunk whose hash is 0 modulo this is eligible for the global deduplication query.
GLOBAL_DEDUP_MODULUS = 1024


def to_hex(h: bytes) -> str:
    """The protocol's string form of a hash (each 8-byte group byte-reversed)."""
    return "".join(h[i : i + 8][::-1].hex() for i in range(0, HASH_LEN, 8))


def from_hex(s: str) -> bytes:
    """Inverse of :func:`to_hex`; ValueError unless ``s`` is 64 lowercase hex digits."""
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise ValueError(f"not a Xet hash: {s[:80]!r}")
    raw = bytes.fromhex(s)
    return b"".join(raw[i : i + 8][::-1] for i in range(0, HASH_LEN, 8))


def _mod(h: bytes, m: int) -> int:
    return int.from_bytes(h[24:32], "little") % m


def chunk_hash(data: bytes) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def _merge(group: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{to_hex(h)} : {n}\n" for h, n in group)
    return blake3(text.encode(), key=INTERNAL_NODE_KEY).digest(), sum(n for _, n in group)


def _next_cut(nodes: Sequence[tuple[bytes, int]], start: int) -> int:
    remaining = len(nodes) - start
    if remaining <= 2:
        return len(nodes)
    end = start + min(MAX_GROUP, remaining)
    for i in range(start + 2, end):
        if _mod(nodes[i][0], MEAN_BRANCHING) == 0:
            return i + 1
    return end


def merkle_root(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    if not chunks:
        return bytes(HASH_LEN)
    nodes = list(chunks)
    while len(nodes) > 1:
        merged = []
        i = 0
        while i < len(nodes):
            cut = _next_cut(nodes, i)
            merged.append(_merge(nodes[i:cut]))
            i = cut
        nodes = merged
    return nodes[0][0]


def xorb_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    return merkle_root(chunks)


def file_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    if not chunks:
        return bytes(HASH_LEN)
    return blake3(merkle_root(chunks), key=ZERO_KEY).digest()


def verification_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    return blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest()


def dedup_eligible(h: bytes) -> bool:
    return _mod(h, GLOBAL_DEDUP_MODULUS) == 0
