"""Candidate pairs from the names' Bloom filters: MinHash bands inside coarse blocks (issue 20).

The blocking rules of lib.linkage.model propose a pair only when some name agrees exactly, by nickname or
by sound code; a child recorded under two misspellings that change the sound code was never scored,
whatever the Dice levels could have said (measured: 9% of true pairs of nodes on the independent corruption
model at rate 0.35 without NHS numbers never passed blocking). This module adds keys on which such pairs
meet.

For each node with both name filters:
- a *MinHash* of each filter: for each of `BANDS` fixed permutations of the filter's 256 bit positions, the
  first set bit in that order. Two filters share a MinHash with probability equal to the Jaccard similarity
  of their set bits (Broder 1997), so a misspelt name shares most of them and an unrelated one few;
- a band key: a 64-bit hash of (band, coarse block, forename MinHash, surname MinHash), for two coarse
  blocks: the date of birth's keyed hash, and the home postcode district with sex. Each alone would propose
  far too many pairs; both names' MinHashes together keep the count bounded (measured in bench.bench_recall).
  A coarse block is a fixed share of the store (there are only so many dates of birth and districts), so its
  chance meetings grow with the square of the store: a block large enough that its nodes would each meet more
  than `PAIRS_PER_NODE` others in a band by chance takes one more MinHash of a name per key, then one more of
  the other, until they would not (`levels`, issue 19: measured in docs/PERFORMANCE.md, session 10).

`name_lsh` holds the 2 x `BANDS` keys of a node as a BIGINT list; one Splink blocking rule explodes it
(`model.blocking_rules(name_lsh=True)`): two nodes sharing any key are a candidate pair. The keys are
computed at linkage time from the stored filters and never stored: they are a function of the filters, so
they tell nothing the filters do not (docs/LINKAGE_PRIVACY.md). The permutations come from a fixed public
seed: the bit positions are already keyed (lib.records.bloom), so a permutation of them needs no secret.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.records import bloom

BANDS = 6  # MinHashes per name, one key per coarse block and band: measured in docs/LINKAGE_PRIVACY.md
ROWS = (1, 1)  # MinHashes of each name in one band key, per coarse block (date of birth, district with sex): with
#               r rows two names of Jaccard similarity J meet in a band with probability J^r, so a larger r
#               proposes fewer unrelated pairs in a large block (measured in docs/LINKAGE_PRIVACY.md, session 7)
PAIRS_PER_NODE = 5.0  # a coarse block whose nodes would each meet more than this many others in one band by chance
#                       takes more MinHashes per key (`levels`); the blocks grow with the store and their chance
#                       meetings with its square, which fixed keys turned into pairs growing with the square of the
#                       store. 5 (15 until session 22): up to 200,000 encounters every node keeps today's keys (the
#                       keys are the same at 15, 8 and 5: measured at 100,000 and 200,000); at 1,000,000, 87% of the
#                       date-of-birth blocks' nodes and 59% of the districts' take a second forename MinHash, the band
#                       pairs 10.7 -> 6.7 s and the link 45.4 -> 41.7 s; recall at 1,000,000 without NHS numbers on
#                       the independent corruption model 0.9800 -> 0.9787 at precision 0.9869 -> 0.9884 (F1 0.9834 ->
#                       0.9835), on the built-in data F1 0.99211 -> 0.99206 (docs/PERFORMANCE.md, session 22)
MAX_LEVEL = 6  # at most ROWS + 3 MinHashes of each name per key (the 5M store's largest blocks need level 2)
SEED = 20_201  # fixed: the permutations are public, the filters' positions are keyed
COLUMN = "name_lsh"


def _ranks() -> np.ndarray:
    """BANDS x BITS: the rank of each bit position in each fixed permutation."""
    rng = np.random.default_rng(SEED)
    return np.stack([np.argsort(rng.permutation(bloom.BITS)) for _ in range(BANDS)])


def _byte_tables() -> np.ndarray:
    """BANDS x BYTES x 256: for each band, byte of the filter and value of that byte, the lowest rank among
    the byte's set bits (BITS when none is set), so a MinHash is a minimum of one look-up per byte."""
    ranks = _ranks()
    values = np.arange(256, dtype=np.uint8)
    bits = np.unpackbits(values[:, None], axis=1, bitorder="little").astype(bool)  # 256 x 8
    nbytes = bloom.BITS // 8
    out = np.full((BANDS, nbytes, 256), bloom.BITS, dtype=np.int16)
    for band in range(BANDS):
        for byte in range(nbytes):
            r = ranks[band, byte * 8:(byte + 1) * 8]  # ranks of this byte's 8 bits
            out[band, byte] = np.where(bits, r[None, :], bloom.BITS).min(axis=1)
    return out


def _filters(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(N x WORDS int64 words, N booleans: has a filter) of a column of stored filters (lists or None)."""
    present = column.notna().to_numpy()
    words = np.zeros((len(column), bloom.WORDS), dtype="<i8")
    if not present.any():
        return words, present
    if isinstance(column.dtype, pd.ArrowDtype):  # Arrow lists (frames.frame(arrow_lists=True)): one flat buffer
        lists = pa.chunked_array(column.array._pa_array).combine_chunks()
        if not pc.all(pc.equal(pc.list_value_length(lists.drop_null()), bloom.WORDS)).as_py():
            raise ValueError(f"{column.name}: every Bloom filter must hold {bloom.WORDS} words")
        words[present] = pc.list_flatten(lists).to_numpy().reshape(-1, bloom.WORDS)
    else:
        words[present] = np.stack([np.asarray(x, dtype="<i8") for x in column[present]])
    return words, present


def minhashes(column: pd.Series) -> np.ndarray:
    """N x BANDS MinHashes (the lowest rank, 0-255, of a set bit under each permutation), -1 without a filter
    or with an empty one. A running minimum over the filter's bytes, each byte looked up in its band's 256-entry
    table (`_byte_tables`): no index array of every byte of every node is built (1,000,000 nodes' two names
    1.6 -> 0.5 s, the same MinHashes; session 18)."""
    words, present = _filters(column)
    data = np.ascontiguousarray(words.view(np.uint8).T)  # BYTES x N: byte b holds bits 8b..8b+7 (little-endian)
    tables = _byte_tables()  # band x byte x value
    out = np.empty((len(column), BANDS), dtype=np.int16)
    best = np.empty(len(column), dtype=np.int16)
    for band in range(BANDS):
        best.fill(bloom.BITS)
        for byte in range(data.shape[0]):
            np.minimum(best, tables[band, byte].take(data[byte]), out=best)
        out[:, band] = best
    out[(out == bloom.BITS) | ~present[:, None]] = -1
    return out


def _hash(values: pd.Series) -> np.ndarray:
    return pd.util.hash_array(values.astype(object).to_numpy()).astype(np.int64)


_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014), a bijection of the 64-bit integers that spreads every
    input bit over the output: keys built by mixing one word into the last are equal only for equal inputs, but
    for a chance of about 2^-64 per two nodes."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _rows(block: int, level: int) -> tuple[int, int]:
    """(forename, surname) MinHashes in one band key of a coarse block at `level`: `ROWS` at level 0, then one more
    of the forename, one more of the surname, alternately."""
    return ROWS[block] + (level + 1) // 2, ROWS[block] + level // 2


def _key(block: int, band: int, base: np.ndarray, fore: np.ndarray, sur: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Band `band`'s key of each node: a 64-bit hash of (block and band, coarse block, its level, the MinHashes its
    level takes: band b's MinHash and the next ones, cyclically; -2 where the level takes fewer). The MinHashes
    (-2 to 255) are packed 9 bits each, at most 7 to a word, a name's words apart from the other's; the block, band
    and level make one more word; the coarse block's hash is mixed (`_mix`), then each word into it in turn. Only
    equality of keys counts (two nodes share a key or not), so this gives the pairs pandas' row hashes gave (at 1M
    and 5M: the same partition of every key slot), in under half the time (session 18)."""
    width = _rows(block, MAX_LEVEL)
    tag = (level.astype(np.uint64) << np.uint64(8)) | np.uint64(block * BANDS + band)
    key = _mix(_mix(np.asarray(base).astype(np.int64).view(np.uint64)) ^ tag)
    for hashes, wide, at in ((fore, width[0], 0), (sur, width[1], 1)):
        taken = np.array([_rows(block, int(lv))[at] for lv in range(MAX_LEVEL + 1)])[level]
        for first in range(0, wide, 7):
            word = np.zeros(len(base), dtype=np.uint64)
            for j in range(first, min(first + 7, wide)):
                part = np.where(j < taken, hashes[:, (band + j) % BANDS], -2).astype(np.int64) + 2  # 0 to 257
                word |= part.astype(np.uint64) << np.uint64(9 * (j - first))
            key = _mix(key ^ word)
    return key.view(np.int64)


def chance_meeting(block: int, level: int, fore: np.ndarray, sur: np.ndarray) -> float:
    """The chance that two nodes drawn at random from the store share band 0's key of a coarse block at `level`,
    given the same block: the sum of the squared frequencies of the combinations of MinHashes the level takes."""
    key = _key(block, 0, np.zeros(len(fore), dtype=np.int64), fore, sur, np.full(len(fore), level))
    share = pd.Series(key).value_counts(normalize=True).to_numpy()
    return float((share ** 2).sum())


def levels(block: int, base: np.ndarray, fore: np.ndarray, sur: np.ndarray) -> np.ndarray:
    """Each node's level in a coarse block: the smallest at which a node of its block meets at most `PAIRS_PER_NODE`
    others in one band by chance (block size x `chance_meeting`), so the raw band matches grow with the store, not its
    square. Every node of a block has the same level: two nodes share a key only within one block and level."""
    codes = pd.factorize(base)[0]
    size = np.bincount(codes)[codes].astype(float) if len(codes) else np.zeros(0)
    out = np.full(len(base), MAX_LEVEL, dtype=np.int64)
    open_ = np.ones(len(base), dtype=bool)
    for level in range(MAX_LEVEL):
        if not open_.any():
            break
        fits = open_ & (size * chance_meeting(block, level, fore, sur) <= PAIRS_PER_NODE)
        out[fits] = level
        open_ &= ~fits
    return out


def band_keys(frame: pd.DataFrame) -> pd.Series:
    """A BIGINT list per node (the `name_lsh` column): 2 x BANDS band keys, or None when the node lacks a
    filter of either name (no key: such a node is blocked by today's rules only)."""
    fore, sur = minhashes(frame["forename_bloom"]), minhashes(frame["surname_bloom"])
    coarse = []
    dob = frame["dob_hash"]
    coarse.append((_hash(dob.astype(object).where(dob.notna(), "")), dob.notna().to_numpy()))  # text or integers
    place = frame["home_district"].astype(object).fillna("") + "|" + frame["sex"].astype(object).fillna("U")
    coarse.append((_hash(place), frame["home_district"].notna().to_numpy()))
    keys, usable = [], (fore[:, 0] >= 0) & (sur[:, 0] >= 0)
    for block, (base, known) in enumerate(coarse):
        held = known & usable
        level = np.zeros(len(frame), dtype=np.int64)
        level[held] = levels(block, base[held], fore[held], sur[held])
        for band in range(BANDS):
            keys.append(np.where(held, _key(block, band, base, fore, sur, level), 0))
    stacked = np.stack(keys, axis=1)  # built as an Arrow list array: no Python object per key
    width = stacked.shape[1]
    values = pa.array(stacked.ravel(), mask=(stacked == 0).ravel(), type=pa.int64())
    offsets = pa.array(np.arange(0, width * len(frame) + 1, width, dtype=np.int32))
    lists = pa.ListArray.from_arrays(offsets, values, mask=pa.array(~usable))
    return pd.Series(pd.arrays.ArrowExtensionArray(lists), index=frame.index)


def no_keys(index: pd.Index) -> pd.Series:
    """A `name_lsh` column of nulls on `index`, of the keys' type (a model's settings name the column; no key is
    read)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.nulls(len(index), type=pa.list_(pa.int64()))), index=index)


def with_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `name_lsh` column."""
    return frame.assign(**{COLUMN: band_keys(frame)})
