"""Records: ingest agency extracts — validate, normalise, geocode, pseudonymise, store in DuckDB.

Modules (each cites its own design in its docstring):
- ``schema``: the documented extract schema (columns, accepted header variants, limits, every check and
  its action, downloadable template).
- ``extract``: read CSV / Excel .xlsx / Parquet into text columns; whole-file problems raise ExtractError.
- ``validate``: vectorised per-row checks, messages naming file, row (header = row 1), field and reason.
- ``geography``: postcode → LSOA → every layer (LAD, upper-tier LA, PFA, ICB, sub-ICB, LHB, NHS body,
  modelled trust catchment), for home and encounter postcodes.
- ``pseudonymise``: keyed hashing (HMAC-SHA256) and derived matching features; key handling.
- ``store``: the DuckDB store, one-transaction idempotent batch ingest, completeness queries.
- ``ingest``: prepare (everything but storing) → PreparedBatch → commit.
- ``aggregates``: the stored per-agency counts (issue 19), refreshed inside every write's transaction.
- ``default``: the default synthetic national dataset at first start.
- ``commands``: ``python -m lib.cli ingest FILE... --db PATH``.

Design decisions:
1. Stored per encounter (table ``encounters``, columns ``store.ENCOUNTER_COLUMNS``): record_key
   (agency_type|agency_code|source_record_id), the agency fields, encounter date and type, CSE flag,
   ``nhs_status`` (valid / invalid / missing) and ``nhs_hash`` (valid numbers only), hashes of the
   normalised forename and surname (upper case, letters only) and of the forename after mapping
   nicknames to a canonical name (BOB → ROBERT), keyed Bloom filters of both names' bigrams
   (lib.records.bloom), Metaphone codes of both names (lossy, in clear),
   hashes of the date of birth and of it with day and month swapped, birth year, sex, hash of the home
   postcode, its sector and district, home and encounter geography, ``is_anonymous`` (no valid NHS
   number, name, date of birth or home postcode), batch_id, ingested_at. Nothing else identifying.
   ``batches`` records each upload (file name, sha256, rows read / stored / already stored / rejected);
   ``rejections`` records every issue (batch, file, row, field, code, reason, action) and never the
   value of an identifier.
2. Names and NHS numbers exist in clear only inside the ingest step (``ingest.prepare``); what the
   page shows before storing is the summary, the issues and the pseudonymised rows.
3. Key: argument (the app passes Streamlit secrets) → $JOINEDUP_KEY → key file beside the database
   (mode 0600, generated on first run). The database keeps a key check and refuses another key.
4. A batch is one DuckDB transaction (encounters + batch row + rejections), rolled back on any error;
   re-uploading adds nothing twice (anti-join on record_key); a killed process leaves the store as it was.
5. Validation is vectorised (pyarrow kernels, numpy, once per distinct value): about 1M rows in a few
   seconds; the NHS Modulus 11 check is a numpy digit-matrix computation that agrees with the
   ``nhs-number`` package's ``is_valid`` (tested on many numbers).
6. Geography follows the ``lib.geo.lookup`` contract (postcode_index, lsoa_table, area_names).
"""
