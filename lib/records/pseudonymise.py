"""Pseudonymisation at rest: a keyed hash (HMAC-SHA256) of each identifier, plus derived matching features.

Key handling (``load_key``), first match wins:
1. a key passed in by the caller (the app passes ``st.secrets["JOINEDUP_KEY"]`` when set);
2. the environment variable ``JOINEDUP_KEY``;
3. the key file beside the database (``data/joinedup.key`` for ``data/joinedup.duckdb``), mode 0600;
4. otherwise a new random key (256 bits, hex) is generated and written to that file with mode 0600.
A key must be at least 16 characters. The database records a key check (an HMAC of a fixed string, not
the key) so that ingesting with a different key is refused instead of silently breaking linkage.

Hashes are hex HMAC-SHA256 over ``domain + ":" + normalised value`` with one domain per kind of value
(``nhs``, ``name``, ``dob``, ``postcode``). Forename and surname share the ``name`` domain on purpose, so
linkage can spot a forename and surname recorded the wrong way round. Each distinct value is hashed once.

Forename and surname are also kept as keyed Bloom filters of their character bigrams (``forename_bloom``,
``surname_bloom``; lib.records.bloom), so linkage can grade a misspelling by Dice similarity.

The date of birth is also hashed two parts at a time (``dob_dm_hash``, ``dob_ym_hash``, ``dob_yd_hash``), so
linkage can see that two dates agree on two of day, month and year without either being stored in clear.

Derived features kept in clear are lossy: phonetic codes of names (jellyfish Metaphone), birth year,
sex, postcode sector ("LS6 2") and district ("LS6"), and the geography of the postcode.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import jellyfish
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.records import bloom
from lib.records.geography import GEOGRAPHY
from lib.records.nicknames import canonical_forename

KEY_ENV = "JOINEDUP_KEY"
MIN_KEY_LENGTH = 16
_KEY_CHECK_MESSAGE = b"joinedup key check v1"


class KeyProblem(ValueError):
    """A key problem (too short, or not the key this database was built with)."""


def key_path(db_path: str | os.PathLike) -> Path:
    return Path(db_path).with_suffix(".key")


def read_or_make_key_file(path: Path) -> str:
    """The key held in ``path``, or a new random one written there 0600 (exclusive create, so two first runs
    agree on one key). Shared by the pseudonymisation key and the audit key; OSError propagates."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by a concurrent first run
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new + "\n")
    os.chmod(path, 0o600)
    return new


#: The key the hosting app holds in its secrets (`use_host_key`); None: the environment or the key file.
_HOST_KEY: list = [None]


def use_host_key(key: str | bytes | None) -> None:
    """Hand over the key the app holds in its secrets, which lib cannot read (it knows nothing of Streamlit).
    Only the Scenario's key (`lib.scenario.scenario.scenario_key`) reads it: a deployment whose key is only in its
    secrets then stores the Scenario's default simulation, inside the writes the app makes, under the key its page
    reads with (lib.scenario.stored; issue 19), not under the fixed synthetic key. None clears it."""
    _HOST_KEY[0] = key or None


def host_key() -> str | bytes | None:
    return _HOST_KEY[0]


def load_key(db_path: str | os.PathLike | None = None, key: str | bytes | None = None, *, create: bool = True) -> bytes:
    """The pseudonymisation key (see module docstring for the order of sources)."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is None and db_path is not None and str(db_path) != ":memory:":
        path = key_path(db_path)
        if path.exists() or create:
            key = read_or_make_key_file(path)
    if key is None:
        raise KeyProblem(f"no pseudonymisation key: set {KEY_ENV} or give a database path to keep a key file beside")
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_LENGTH:
        raise KeyProblem(f"the pseudonymisation key must be at least {MIN_KEY_LENGTH} characters")
    return raw


def key_check(key: bytes) -> str:
    """A value that identifies the key without revealing it (stored in the database)."""
    return hmac.new(key, _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()[:32]


class Hasher:
    """HMAC-SHA256 with the key's inner and outer states precomputed (about 1 µs a value)."""

    def __init__(self, key: bytes):
        block = key if len(key) <= 64 else hashlib.sha256(key).digest()
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hexdigest(self, domain: str, value: str) -> str:
        inner = self._inner.copy()
        inner.update(f"{domain}:{value}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def _digests(self, domain: str, values: list):
        """Each value's finished HMAC object (None for None), in order."""
        inner, outer = self._inner, self._outer
        prefix = f"{domain}:".encode()
        for value in values:
            if value is None:
                yield None
                continue
            h = inner.copy()
            h.update(prefix + value.encode("utf-8"))
            o = outer.copy()
            o.update(h.digest())
            yield o

    def values(self, domain: str, values: list) -> list:
        """Hex digests of a list of str (None stays None); callers pass distinct values."""
        return [None if o is None else o.hexdigest() for o in self._digests(domain, values)]

    def first_bytes(self, domain: str, values: list[str]) -> bytearray:
        """The first byte of each value's digest (``int(hexdigest[:2], 16)``), without forming the hex text: the
        record keys of disclosure control (lib.disclosure.members)."""
        return bytearray(o.digest()[0] for o in self._digests(domain, values))


def _dictionary(arr) -> pa.DictionaryArray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    return arr


def _map_dictionary(arr, func, value_type=pa.string()) -> pa.DictionaryArray:  # noqa: B008 - an immutable type
    """Apply func to each distinct value of a dictionary-encoded column (None stays null)."""
    arr = _dictionary(arr)
    values = [func(v) if v is not None else None for v in arr.dictionary.to_pylist()]
    return pa.DictionaryArray.from_arrays(arr.indices, pa.array(values, type=value_type))


def _with_dictionary(arr, dictionary: pa.Array) -> pa.DictionaryArray:
    arr = _dictionary(arr)
    return pa.DictionaryArray.from_arrays(arr.indices, dictionary)


def _date_dictionary(dates) -> tuple[pa.DictionaryArray, np.ndarray]:
    """A date32 column as a dictionary of distinct days; also the distinct days (datetime64[D])."""
    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    days = pc.fill_null(dates.cast(pa.int32()), -(2 ** 31)).to_numpy(zero_copy_only=False).astype(np.int64)
    present = pc.is_valid(dates).to_numpy(zero_copy_only=False)
    uniques, inverse = np.unique(days[present], return_inverse=True)
    indices = np.full(len(days), -1, dtype=np.int32)
    indices[present] = inverse.reshape(-1)
    return (pa.DictionaryArray.from_arrays(pa.array(indices, mask=~present), pa.array(uniques.astype(np.int32))),
            uniques.astype("datetime64[D]"))


def _iso(days: np.ndarray) -> list:
    return list(np.datetime_as_string(days, unit="D"))


def swapped_dates(days: np.ndarray) -> list:
    """Each date with day and month swapped where that is a different real date; else None."""
    months = days.astype("datetime64[M]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months).astype(np.int64) + 1
    return [f"{y:04d}-{d:02d}-{m:02d}" if d <= 12 and d != m else None for y, m, d in zip(year, month, day)]


def date_parts(days: np.ndarray) -> dict[str, list]:
    """Each date's parts two at a time, as the values hashed for partial agreement (domain ``dob``; the
    prefixes keep them apart from whole dates): ``dm`` "DM:07-02" (month-day), ``ym`` "YM:2010-07",
    ``yd`` "YD:2010-02"."""
    months = days.astype("datetime64[M]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months).astype(np.int64) + 1
    return {"dm": [f"DM:{m:02d}-{d:02d}" for m, d in zip(month, day)],
            "ym": [f"YM:{y:04d}-{m:02d}" for y, m in zip(year, month)],
            "yd": [f"YD:{y:04d}-{d:02d}" for y, d in zip(year, day)]}


def sector_district(postcodes: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Postcode sector ("LS6 2") and district ("LS6") of normalised postcodes (no spaces)."""
    outward = pc.utf8_slice_codeunits(postcodes, 0, -3)
    sector = pc.binary_join_element_wise(outward, pc.utf8_slice_codeunits(postcodes, -3, -2), " ")
    return sector, outward


def _bloom_column(arr, encoder: bloom.Encoder) -> pa.Array:
    """Each value's Bloom filter (a list of int64; null stays null), encoded once per distinct value."""
    arr = _dictionary(arr)
    filters = pa.array(encoder.encode_many(arr.dictionary.to_pylist()), pa.list_(pa.int64()))
    return filters.take(arr.indices)


def pseudonymise(good: pa.Table, key: bytes) -> pa.Table:
    """Turn validated rows (clear identifiers) into stored rows: hashes and lossy features only.

    ``good`` is ``Validated.table``. Work is done once per distinct value of each identifier.
    """
    hasher = Hasher(key)

    def hashed(arr, domain: str) -> pa.DictionaryArray:
        arr = _dictionary(arr)
        return _with_dictionary(arr, pa.array(hasher.values(domain, arr.dictionary.to_pylist()), pa.string()))

    forename = _dictionary(good.column("forename"))
    surname = _dictionary(good.column("surname"))
    dob_dict, dob_days = _date_dictionary(good.column("date_of_birth"))
    parts = date_parts(dob_days)
    home = _dictionary(good.column("home_postcode"))
    sector, district = sector_district(home.dictionary)
    years = pc.year(good.column("date_of_birth"))
    nhs_status = good.column("nhs_status").combine_chunks()
    n = good.num_rows

    out = {name: good.column(name) for name in ("record_key", "source_record_id", "agency_type", "agency_code",
                                                "encounter_date", "encounter_type", "cse_flag")}
    out.update({
        "nhs_status": nhs_status,
        "nhs_hash": hashed(good.column("nhs_number"), "nhs"),
        "forename_hash": hashed(forename, "name"),
        "surname_hash": hashed(surname, "name"),
        "forename_canon_hash": _with_dictionary(forename, pa.array(
            hasher.values("name", [canonical_forename(v) for v in forename.dictionary.to_pylist()]), pa.string())),
        "forename_bloom": _bloom_column(forename, bloom.Encoder(key, "forename")),
        "surname_bloom": _bloom_column(surname, bloom.Encoder(key, "surname")),
        "forename_phonetic": _map_dictionary(forename, lambda v: jellyfish.metaphone(v) or None),
        "surname_phonetic": _map_dictionary(surname, lambda v: jellyfish.metaphone(v) or None),
        "dob_hash": _with_dictionary(dob_dict, pa.array(hasher.values("dob", _iso(dob_days)), pa.string())),
        "dob_swap_hash": _with_dictionary(dob_dict, pa.array(hasher.values("dob", swapped_dates(dob_days)),
                                                             pa.string())),
        **{f"dob_{part}_hash": _with_dictionary(dob_dict, pa.array(hasher.values("dob", values), pa.string()))
           for part, values in parts.items()},
        "birth_year": pc.cast(years, pa.int16()),
        "sex": good.column("sex"),
        "home_postcode_hash": hashed(home, "postcode"),
        "home_sector": _with_dictionary(home, sector),
        "home_district": _with_dictionary(home, district),
    })
    for prefix in ("home", "enc"):
        for layer in GEOGRAPHY:
            out[f"{prefix}_{layer}"] = good.column(f"{prefix}_{layer}")
    valid_nhs = pc.equal(pc.cast(nhs_status, pa.string()), "valid")
    identified = pc.or_kleene(valid_nhs, pc.is_valid(forename))
    for arr in (surname, dob_dict, home):
        identified = pc.or_kleene(identified, pc.is_valid(arr))
    out["is_anonymous"] = pc.invert(pc.fill_null(identified, False))
    table = pa.table(out)
    assert table.num_rows == n
    return table
