"""Place records in every geography, fast enough for a million rows.

Built on the ``lib.geo.lookup`` contract (``postcode_index``, ``lsoa_table``, ``area_names``): a postcode is
found in the ONS Postcode Directory subset (November 2025), which gives its 2011 LSOA, and the LSOA row
gives every layer: LAD, upper-tier LA (children's services), police force area, ICB, sub-ICB location,
Welsh health board, NHS body (ICB or health board) and modelled acute trust catchment.

How it stays fast: a postcode (upper case, spaces removed) is turned into a 64-bit integer (7 characters,
base 37) with numpy on the raw Arrow buffers; its UK shape is checked on the same digits; distinct
postcodes are found by a binary search in the sorted directory keys (built once per process); layer
columns are Arrow dictionary arrays built from integer codes. The result agrees with
``lib.geo.lookup.place_postcodes`` (tested on thousands of real postcodes), which is correct but about
ten times slower on a million rows.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.geo import agencies, layers, lookup

#: Stored geography suffix -> lsoa_table column: the LSOA, then every layer stored under its own key (lib.geo.layers
#: STORED), in the column order of the LSOA lookup (the stored encounters table keeps that order).
GEOGRAPHY: dict[str, str] = {"lsoa": "lsoa11cd", **dict(sorted(
    layers.STORED.items(), key=lambda kv: lookup.PLACE_COLUMNS.index(kv[1]) if kv[1] in lookup.PLACE_COLUMNS
    else len(lookup.PLACE_COLUMNS)))}

POSTCODE_PATTERN = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"

#: Which layer holds the valid agency codes of each agency type (docs/CONTRACTS.md).
AGENCY_LAYER = agencies.NATIVE_LAYER
#: Layer -> how its codes are described in messages (lib.geo.layers ``code_words``).
LAYER_WORDS = {key: layer.code_words for key, layer in layers.REGISTRY.items() if layer.code_words}


def normalise_postcodes(values: pa.Array) -> pa.Array:
    """Upper case, spaces removed; <null> where not shaped like a UK postcode (as lookup.normalise_postcode,
    except that tabs and line breaks are not removed: cells holding them are rejected before this)."""
    text = pc.replace_substring(pc.utf8_upper(values), pattern=" ", replacement="")
    ok = pc.fill_null(pc.match_substring_regex(text, POSTCODE_PATTERN), False)
    return pc.if_else(ok, text, pa.scalar(None, pa.string()))


def fixed_width_bytes(arr: pa.Array, width: int) -> np.ndarray:
    """(n, width) uint8 matrix of a string array whose values are all exactly ``width`` bytes long."""
    arr = pc.cast(arr, pa.string())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else pa.concat_arrays([arr])  # offset 0
    if len(arr) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[: len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    return data[offsets[0]: offsets[0] + width * len(arr)].reshape(len(arr), width)


# A normalised postcode (5 to 7 characters of A-Z, 0-9) as an integer: left-padded with spaces to 7
# characters, each character a base-37 digit (space 0, digits 1-10, letters 11-36). Order-preserving.
_B37 = np.full(256, 64, dtype=np.uint8)  # 64 marks a character that cannot be in a postcode
_B37[32] = 0
_B37[48:58] = np.arange(1, 11)
_B37[65:91] = np.arange(11, 37)
_CHARS = np.frombuffer(b" 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_P37 = 37 ** np.arange(6, -1, -1, dtype=np.int64)


def _shaped(codes: np.ndarray, length: np.ndarray) -> np.ndarray:
    """UK postcode shape on base-37 code rows (right-aligned in 7): outward code of 2-4 characters
    (one or two letters, a digit, then an optional letter or digit), inward code digit-letter-letter."""
    letter = (codes >= 11) & (codes < 37)
    digit = (codes >= 1) & (codes <= 10)
    alnum = letter | digit
    inward = digit[:, 4] & letter[:, 5] & letter[:, 6]
    # the outward code occupies columns 7 - length .. 3
    out2 = (length == 5) & letter[:, 2] & digit[:, 3]
    out3 = (length == 6) & letter[:, 1] & ((digit[:, 2] & alnum[:, 3]) | (letter[:, 2] & digit[:, 3]))
    out4 = (length == 7) & letter[:, 0] & letter[:, 1] & digit[:, 2] & alnum[:, 3]
    return inward & (out2 | out3 | out4)


def postcode_keys(normalised: pa.Array) -> np.ndarray:
    """int64 key of each postcode (upper case, no spaces) that has the UK postcode shape; -1 otherwise."""
    length = pc.fill_null(pc.binary_length(normalised), 0).to_numpy(zero_copy_only=False)
    ok_length = (length >= 5) & (length <= 7)
    fitted = pc.if_else(pa.array(ok_length), pc.fill_null(normalised, ""), "")
    codes = _B37[fixed_width_bytes(pc.utf8_lpad(fitted, width=7, padding=" "), 7)]
    ok = ok_length & _shaped(codes, length)
    keys = np.zeros(len(codes), dtype=np.int64)
    for column in range(7):
        keys *= 37
        keys += codes[:, column]
    return np.where(ok, keys, -1)


def parse_postcodes(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Postcodes as written -> (per-row index into the distinct well-formed postcodes or -1, the distinct
    keys, their lsoa_table positions (-1 = not in the directory), per-row 'a value was present').

    Spaces are removed and letters upper-cased; the shape is checked on the integer codes.
    """
    present = pc.is_valid(values).to_numpy(zero_copy_only=False)
    text = pc.replace_substring(pc.utf8_upper(values), pattern=" ", replacement="")
    keys = postcode_keys(text)
    index, uniques = pd.factorize(keys)
    uniques = np.asarray(uniques, dtype=np.int64)
    if (uniques == -1).any():  # -1 (malformed) was factorized as a value: make it the missing index
        bad = int(np.flatnonzero(uniques == -1)[0])
        uniques = np.delete(uniques, bad)
        index = np.where(index == bad, -1, np.where(index > bad, index - 1, index))
    return index.astype(np.int64), uniques, locate_keys(uniques), present


def postcodes_from_keys(keys: np.ndarray) -> pa.Array:
    """Normalised postcode text of each key (keys must be >= 0)."""
    digits = (keys[:, None] // _P37[None, :]) % 37
    raw = np.ascontiguousarray(_CHARS[digits]).view("S7").ravel()
    return pc.utf8_ltrim(pc.cast(pa.array(raw, type=pa.binary(7)).cast(pa.binary()), pa.string()), characters=" ")


def digits_text(values: np.ndarray, width: int = 10) -> pa.Array:
    """Zero-padded decimal text of non-negative integers."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    raw = np.ascontiguousarray(((values[:, None] // powers[None, :]) % 10 + 48).astype(np.uint8))
    return pc.cast(pa.array(raw.view(f"S{width}").ravel(), type=pa.binary(width)).cast(pa.binary()), pa.string())


def indexed_dictionary(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """A dictionary array from int indices (-1 = null)."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32), mask=indices < 0), dictionary)


def int_dictionary(values: np.ndarray, to_text) -> pa.DictionaryArray:
    """A dictionary array of the text of int64 values (-1 = null); to_text maps an int array to text."""
    present = values >= 0
    uniques, inverse = np.unique(values[present], return_inverse=True)
    indices = np.full(len(values), -1, dtype=np.int32)
    indices[present] = inverse.reshape(-1)
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=~present), to_text(uniques))


@lru_cache(maxsize=1)
def _directory() -> tuple[np.ndarray, np.ndarray]:
    """Sorted postcode keys of the ONS Postcode Directory subset and the lsoa_table position of each."""
    index = lookup.postcode_index()
    postcodes = pa.Array.from_pandas(index["postcode"])
    lsoa = pa.Array.from_pandas(index["lsoa11cd"])
    lsoa = (lsoa.combine_chunks() if isinstance(lsoa, pa.ChunkedArray) else lsoa).dictionary_encode()
    in_table = pd.Index(lookup.lsoa_table()["lsoa11cd"]).get_indexer(lsoa.dictionary.to_pylist())
    lsoa_pos = in_table[lsoa.indices.to_numpy(zero_copy_only=False)]
    keys = postcode_keys(postcodes)
    order = np.argsort(keys, kind="stable")
    return keys[order], lsoa_pos[order].astype(np.int32)


def locate_keys(keys: np.ndarray) -> np.ndarray:
    """lsoa_table position of each postcode key; -1 if unknown or -1."""
    sorted_keys, lsoa_pos = _directory()
    keys = np.asarray(keys, dtype=np.int64)
    order = np.argsort(keys, kind="stable")  # searching in key order is several times faster
    idx = np.clip(np.searchsorted(sorted_keys, keys[order]), 0, len(sorted_keys) - 1)
    found = (sorted_keys[idx] == keys[order]) & (keys[order] >= 0)
    out = np.empty(len(keys), dtype=np.int32)
    out[order] = np.where(found, lsoa_pos[idx], -1)
    return out


def locate(values) -> np.ndarray:
    """lsoa_table position of each postcode as written (any spacing or case); -1 if unknown."""
    arr = pa.array(pd.Series(values, dtype="string").array, type=pa.string())
    index, _, lsoa, _ = parse_postcodes(arr)
    return np.where(index >= 0, lsoa[np.maximum(index, 0)] if len(lsoa) else -1, -1).astype(np.int32)


@lru_cache(maxsize=1)
def _layer_codes() -> dict[str, tuple[np.ndarray, pa.Array]]:
    """For each stored layer: per-LSOA code index (-1 = none) and the codes."""
    table = lookup.lsoa_table()
    out = {}
    for key, column in GEOGRAPHY.items():
        codes, uniques = pd.factorize(table[column].astype("string"), use_na_sentinel=True)
        out[key] = (codes.astype(np.int32), pa.array(list(uniques.astype(str)), pa.string()))
    return out


def geography_columns(lsoa_pos: np.ndarray, prefix: str) -> dict[str, pa.DictionaryArray]:
    """Columns ``{prefix}_{layer}`` for rows with the given lsoa_table positions (-1 = not placed)."""
    layers = _layer_codes()
    found = lsoa_pos >= 0
    safe = np.where(found, lsoa_pos, 0)
    out = {}
    for key in GEOGRAPHY:
        per_lsoa, categories = layers[key]
        codes = np.where(found, per_lsoa[safe], -1).astype(np.int32)
        out[f"{prefix}_{key}"] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), categories)
    return out


@lru_cache(maxsize=1)
def agency_codes() -> dict[str, frozenset[str]]:
    """Valid agency codes for each agency type that is checked (``other`` accepts any code)."""
    out = {}
    for agency, layer in AGENCY_LAYER.items():
        codes = set(lookup.area_names(layer)["code"].astype(str))
        if layer == "trust":
            codes |= set(lookup.lsoa_table()["trust_code"].dropna().astype(str))
        out[agency] = frozenset(codes)
    return out


@lru_cache(maxsize=1)
def code_layers() -> dict[str, str]:
    """Any agency code -> the layer it belongs to (for helpful messages)."""
    out = {}
    for layer in dict.fromkeys([*AGENCY_LAYER.values(), *layers.LAYERS]):  # agencies' own layers first
        for code in lookup.area_names(layer)["code"].astype(str):
            out.setdefault(code, layer)
    return out
