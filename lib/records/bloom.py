"""Keyed Bloom filter encodings of names, so linkage can grade a misspelt name without storing it in clear.

Construction (Schnell, Bachteler and Reiher, "Privacy-preserving record linkage using Bloom filters",
BMC Medical Informatics and Decision Making 9:41, 2009), with the independent keyed hashing of clkhash's
``blakeHash`` (data61/clkhash, ``clkhash/bloomfilter.py``: ``blake_hash_token``), not the double hashing
of the original paper, whose l² possible bit patterns per bigram are what Kroll and Steinmetzer (2015)
exploited:

1. the normalised name (upper case, as validation leaves it) is padded with one space each side and cut
   into character bigrams: "ANN" -> " A", "AN", "NN", "N " (a set: repeats count once);
2. each bigram sets ``K`` bits of a ``BITS``-bit filter; the positions are the first ``K`` bytes of
   BLAKE2b(bigram) keyed with a *field key* (each byte is a position: ``BITS`` is 256), so the same
   bigram gives unrelated positions in another field or under another key;
3. the field key is HMAC-SHA256(pseudonymisation key, "bloom:" + field): salting with the field name
   means a forename's filter and a surname's filter are not comparable, and the pseudonymisation key
   (lib.records.pseudonymise.load_key) is the only secret.

A filter is stored as four signed 64-bit integers (a DuckDB ``BIGINT[]``), so the Dice coefficient
2·|A∧B| / (|A| + |B|) is four ``bit_count`` of ``&`` in SQL on DuckDB and on Spark alike
(lib.linkage.model). Balancing and XOR-folding were considered and left out (docs/LINKAGE_PRIVACY.md
says why).
"""
from __future__ import annotations

import hashlib
import hmac

import numpy as np

BITS = 256  # filter length in bits: one byte of the hash is one position
WORDS = BITS // 64
K = 8  # bits set per bigram
FIELDS = ("forename", "surname")


def field_key(key: bytes, field: str) -> bytes:
    """The key of one field's filters: the pseudonymisation key salted with the field name."""
    return hmac.new(key, f"bloom:{field}".encode(), hashlib.sha256).digest()


def bigrams(name: str) -> list[str]:
    """The distinct character bigrams of a name padded with one space each side, in order of first use."""
    padded = f" {name} "
    return list(dict.fromkeys(padded[i:i + 2] for i in range(len(padded) - 1)))


class Encoder:
    """Bloom filters of one field under one key; each distinct bigram is hashed once."""

    def __init__(self, key: bytes, field: str):
        self._key = field_key(key, field)
        self._positions: dict[str, bytes] = {}

    def positions(self, gram: str) -> bytes:
        found = self._positions.get(gram)
        if found is None:
            found = hashlib.blake2b(gram.encode("utf-8"), key=self._key, digest_size=K).digest()
            self._positions[gram] = found
        return found

    def bits(self, name: str) -> np.ndarray:
        """The filter as BITS booleans."""
        out = np.zeros(BITS, dtype=bool)
        for gram in bigrams(name):
            out[np.frombuffer(self.positions(gram), dtype=np.uint8)] = True
        return out

    def encode(self, name: str | None) -> list[int] | None:
        """The filter as WORDS signed 64-bit integers (bit i of the filter is bit i % 64 of word i // 64)."""
        if name is None or name == "":
            return None
        packed = np.packbits(self.bits(name), bitorder="little")
        return [int(w) for w in packed.view("<i8")]

    def encode_many(self, names: list) -> list:
        return [self.encode(name) for name in names]


def to_bits(words) -> np.ndarray:
    """BITS booleans of a stored filter (WORDS integers)."""
    return np.unpackbits(np.asarray(words, dtype="<i8").view(np.uint8), bitorder="little").astype(bool)


def dice(a, b) -> float:
    """Dice coefficient 2·|A∧B| / (|A| + |B|) of two stored filters (0 when both are empty)."""
    x, y = to_bits(a), to_bits(b)
    total = int(x.sum() + y.sum())
    return 2 * int((x & y).sum()) / total if total else 0.0


def dice_sql(column: str) -> str:
    """SQL (DuckDB dialect; Splink translates it for Spark, list indices included) for the Dice coefficient
    of ``column`` between the two sides of a pair; NULL when either side has no filter."""
    left, right = f'"{column}_l"', f'"{column}_r"'
    # bit_count is a TINYINT in DuckDB: each term is widened before the sums.
    both = " + ".join(f"CAST(bit_count({left}[{i}] & {right}[{i}]) AS INTEGER)" for i in range(1, WORDS + 1))
    cards = " + ".join(f"CAST(bit_count({side}[{i}]) AS INTEGER)" for side in (left, right)
                       for i in range(1, WORDS + 1))
    return f"(2.0 * ({both}) / ({cards}))"
