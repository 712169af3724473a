"""Charts read correctly: whole-number colour bars for counts, a funnel with readable log ticks and a legend for
each marker, a ratio map not driven by tiny counts (defects found by looking at the pages, issue 18)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.geo import lookup, maps
from lib.measures import figures


def test_colour_bars_of_counts_step_in_whole_numbers():
    assert maps.whole_number_ticks([0, 1, 3]) == {"tick0": 0, "dtick": 1, "tickformat": ",d"}
    assert maps.whole_number_ticks([0, 40, 130])["dtick"] == 50
    assert maps.whole_number_ticks([12.5, 40.0]) == {}  # percentages keep Plotly's ticks
    codes = list(lookup.name_of("utla"))[:3]
    fig = maps.choropleth_figure("utla", dict(zip(codes, [0, 1, 3])), "Children")
    assert fig.data[0].colorbar.dtick == 1 and fig.data[0].colorbar.tickformat == ",d"


def _divergence_table(n: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = list(lookup.name_of("utla"))[:n]
    a = rng.integers(5, 400, n)
    b = rng.integers(5, 400, n)
    a[0], b[0] = 10, 0  # a tiny area with an extreme ratio
    total = a + b
    share = a / total
    p0 = a.sum() / total.sum()
    se = np.sqrt(p0 * (1 - p0) / total)
    return pd.DataFrame({"area_code": codes, "area_name": [lookup.name_of("utla")[c] for c in codes],
                         "count_a": a, "count_b": b, "total": total, "share_a": share, "national_share": p0,
                         "log_ratio": np.log((a + 0.5) / (b + 0.5)),
                         "outside_95": np.abs(share - p0) > 1.96 * se, "outside_998": np.abs(share - p0) > 3.09 * se,
                         "verdict": "x"})


def test_funnel_log_axis_reads_1_2_5_and_both_outlier_markers_are_in_the_legend():
    table = _divergence_table()
    fig = figures.funnel_figure(table, "police", "children_social_care")
    ticks = list(fig.layout.xaxis.tickvals)
    assert ticks[:3] == [1, 2, 5] and all(str(t)[0] in "125" for t in ticks)
    assert list(fig.layout.xaxis.ticktext)[:4] == ["1", "2", "5", "10"]
    names = {trace.name for trace in fig.data if trace.showlegend is not False}
    assert {"outside 95% limits", "outside 99.8% limits", "within 95% limits"} <= names
    national = fig.layout.annotations[0]  # at the right end, clear of the y-axis title
    assert national.text.startswith("national") and national.x == 1 and national.xanchor == "right"
    labelled = [t for trace in fig.data if trace.mode == "markers+text" for t in trace.text if t]
    assert 0 < len(labelled) <= 8


def test_ratio_map_greys_areas_with_few_records_and_is_scaled_by_the_many():
    table = _divergence_table()
    fig = figures.ratio_map(table, "utla", "police", "children_social_care")
    coloured = set(fig.data[0].locations)
    assert table.loc[0, "area_code"] not in coloured  # 10 against 0: too few to compare
    assert table.loc[0, "area_code"] in set(fig.data[1].locations)
    bound = fig.data[0].zmax
    many = table[table["total"] >= figures.RATIO_MIN_TOTAL]
    assert bound <= np.abs(many["log_ratio"]).max() + 1e-9
    assert bound < np.log(10.5 / 0.5)
