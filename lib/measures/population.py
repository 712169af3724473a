"""Child populations for rates per 10,000 children.

Default (synthetic, an approximation): the 10–17-year-olds of England and Wales, about 5.6 million
(``NATIONAL_CHILDREN``; ONS mid-2022 population estimates, rounded — approximate), shared out over LSOAs
by their postcode counts, the same weight the synthetic generator uses to place children's homes. It is
labelled as an approximation wherever shown. A real population can be uploaded as a CSV with
``area_code`` and ``children`` columns on the layer being shown.
"""
from __future__ import annotations

import io

import pandas as pd

from lib.geo import lookup
from lib.measures import convert

NATIONAL_CHILDREN = 5_600_000
DEFAULT_SOURCE = ("Approximate: about 5.6 million 10–17-year-olds in England and Wales (ONS mid-2022 estimates, "
                  "rounded), shared over areas by postcode counts — a synthetic stand-in, not an official figure.")


def default_population(layer: str) -> pd.Series:
    """Approximate children aged 10–17 per area of ``layer`` (float, indexed by area code)."""
    column = convert.LAYER_COLUMNS[convert.layer_key(layer)]
    table = lookup.lsoa_table()
    total = table["postcodes"].sum()
    per_area = table.dropna(subset=[column]).groupby(column)["postcodes"].sum() / total * NATIONAL_CHILDREN
    per_area.index = per_area.index.astype(str)
    return per_area.rename("children").astype("float64")


def read_population(source) -> tuple[pd.Series, list[str]]:
    """An uploaded population CSV (``area_code``, ``children``) → (Series by area code, problems)."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.columns = [c.strip().lower() for c in frame.columns]
    missing = {"area_code", "children"} - set(frame.columns)
    if missing:
        raise ValueError(f"the population file needs columns area_code and children (missing {', '.join(sorted(missing))})")
    values = pd.to_numeric(frame["children"].str.replace(",", "").str.strip(), errors="coerce")
    problems = [f"row {i + 2}: children {frame['children'].iat[i]!r} is not a number"
                for i in range(len(frame)) if pd.isna(values.iat[i])]
    series = pd.Series(values.to_numpy("float64"), index=frame["area_code"].str.strip().astype(str), name="children")
    return series[series.notna()], problems
