"""Where agencies' counts diverge, and why: counts aligned on a common geography (issue 5).

- ``convert``: moving counts between layers — exact sums where one layer nests in another, apportioning
  by LSOA postcode weights where it does not (apportioned figures are flagged).
- ``counts``: per-agency counts of CSE-flagged records and distinct linked children by layer and period,
  computed once per store version with DuckDB group-bys (``MeasureCube``).
- ``funnel``: exact binomial funnel limits (Spiegelhalter 2005) and log-ratio intervals.
- ``divergence``: the per-area divergence table, trend, decomposition and plain-English readings.
- ``population``: child population for rates (synthetic default or uploaded).
- ``published``: importers for DfE children-in-need table C3 and generic "area, period, count" files.
- ``spans``: measures of linked children (``record_child``): spans of several areas, flows between areas,
  children only probabilistic linkage brought together. ``journeys``: one linked child's records, masked.
- ``figures``: Plotly figures for the Divergence page. ``commands``: ``import-stats`` and ``divergence``.
"""
