"""Boundaries page: every agency's geography on one map, a place finder, and where they misalign."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.geo import alignment, catchments, lookup, maps
from lib.geo.layers import LAYERS, PLACE_ORDER, POLYGONS, vintage_table
from pages.common import export_button, require_page

require_page("boundaries")  # every role: public boundaries only, no records
st.title("Boundaries")
st.markdown(
    "Police, children's services and the NHS each work on their own map. Switch layers on to see "
    "them together; hover an area to see which areas of the other layers it falls in."
)

VIEWS = ("Overlay map", "Where boundaries misalign", "Trust catchment shares")
view_choice = st.segmented_control("View", VIEWS, default=VIEWS[0], key="view", label_visibility="collapsed") \
    or VIEWS[0]


@st.cache_resource(show_spinner=False, max_entries=64)
def boundaries_figure(shown: tuple[str, ...], hover_layer: str, style: str,
                      highlight: tuple[str, str] | None, point: tuple[float, float, str] | None):
    view = maps.zoom_for_bounds(maps.layer_bounds(highlight[0])[highlight[1]]) if highlight else (
        {"center": {"lat": point[0], "lon": point[1]}, "zoom": 10.5} if point else None)
    return maps.boundaries_figure(list(shown), hover_layer, style=style, view=view, highlight=highlight,
                                  point=point)


@st.cache_resource(show_spinner=False, max_entries=64)
def misalignment_figure(layer: str, against: str, min_share: float):
    table = alignment.misalignment(layer, min_share)
    covered = table[table[f"{against}_areas"] > 0]
    values = dict(zip(covered["code"], covered[f"{against}_crossing"].astype(float)))
    return maps.choropleth_figure(layer, values, f"{LAYERS[against].short} areas cutting across",
                                  hover=alignment.hover_text(layer), outline=against, colorscale="Cividis",
                                  reverse=True, discrete_max=max(3, int(covered[f"{against}_crossing"].max())))



@st.cache_data(show_spinner=False, max_entries=32)
def trust_shares_table(trust: str) -> pd.DataFrame:
    table = catchments.trust_share_by_area(trust, "lad_code")
    table.insert(1, "area_name", table["area_code"].map(lookup.name_of("lad")))
    return table


@st.cache_resource(show_spinner=False, max_entries=32)
def trust_share_figure(trust: str):
    table = trust_shares_table(trust)
    shown = table[table["share"] >= 0.001]
    values = dict(zip(shown["area_code"], (shown["share"] * 100).round(1)))
    hover = {c: f"about {n:,.0f} children aged 0–17 attributed" for c, n in zip(shown["area_code"], shown["children"])}
    figure = maps.choropleth_figure("lad", values, "% of the district's admissions", hover=hover, outline="trust",
                                    colorscale="Viridis", reverse=True)
    # Zoom to the districts where the trust takes at least 5% of admissions (all shaded ones if none).
    core = table[table["share"] >= 0.05]["area_code"].tolist() or list(values)
    bounds = [b for code, b in maps.layer_bounds("lad").items() if code in set(core)]
    if bounds:
        box = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))
        view = maps.zoom_for_bounds(box)
        figure.update_layout(map={**view, "zoom": max(view["zoom"] - 1.0, 3.0)})  # some context around it
    return figure


def _place_panel(rows: list[tuple[str, str, str]]) -> None:
    st.table(pd.DataFrame(rows, columns=["Geography", "Area", "Code"]).set_index("Geography"))


if view_choice == VIEWS[0]:
    controls, canvas = st.columns([1, 3])
    with controls:
        st.subheader("Layers")
        shown = [key for key, layer in LAYERS.items()
                 if st.toggle(layer.title, value=key in ("pfa", "utla", "icb", "lhb"), key=f"layer_{key}",
                              help=f"{layer.agency}. {layer.note} Drawn as a {layer.dash} line.")]
        hover_layer = st.selectbox("Hover details for", list(LAYERS), index=list(LAYERS).index("utla"),
                                   format_func=lambda k: LAYERS[k].title)
        basemap = st.selectbox("Base map", list(maps.BASEMAPS), index=0)
        st.subheader("Find a place")
        query = st.text_input("Postcode or area name", placeholder="e.g. LS1 3EX or Rotherham",
                              key="place_query")

        highlight = point = None
        if query.strip():
            postcode = lookup.normalise_postcode(pd.Series([query])).iloc[0]
            if isinstance(postcode, str):
                placed = lookup.place_postcodes(pd.Series([postcode])).iloc[0]
                if pd.isna(placed["lsoa11cd"]):
                    st.warning(f"{lookup.format_postcode(postcode)} is not a current postcode in England or Wales.")
                else:
                    label = lookup.format_postcode(postcode)
                    point = (float(placed["lat"]), float(placed["lon"]), label)
                    st.markdown(f"**{label}** is covered by:")
                    _place_panel([(LAYERS[k].short, lookup.name_of(k).get(placed[LAYERS[k].column], "—"),
                                   placed[LAYERS[k].column]) for k in PLACE_ORDER
                                  if not pd.isna(placed[LAYERS[k].column])])
            else:
                found = lookup.find_area(query)
                if found.empty:
                    st.warning(f"No postcode or area matches “{query.strip()}”.")
                else:
                    choice = st.selectbox(
                        "Matching areas", range(len(found)),
                        format_func=lambda i: f"{found.at[i, 'name']} — {LAYERS[found.at[i, 'layer']].short}")
                    layer, code, name = found.at[choice, "layer"], found.at[choice, "code"], found.at[choice, "name"]
                    highlight = (layer, code)
                    st.markdown(f"**{name}** ({LAYERS[layer].short}, {code}) falls in:")
                    rows = []
                    for other, members in alignment.memberships(layer, code).items():
                        for other_code, other_name, share in members:
                            rows.append((LAYERS[other].short, other_name if share > 0.995 else
                                         f"{other_name} ({share:.0%} of its LSOAs)" if share >= 0.005 else
                                         f"{other_name} (<1% of its LSOAs)", other_code))
                    _place_panel(rows)
        if "trust" in shown:
            st.info(LAYERS["trust"].note, icon=":material/info:")

    with canvas:
        figure = boundaries_figure(tuple(shown), hover_layer, maps.BASEMAPS[basemap], highlight, point)
        st.plotly_chart(figure, width="stretch", config={"scrollZoom": True, "displaylogo": False},
                        key="boundaries_map")

elif view_choice == VIEWS[2]:
    names = lookup.name_of("trust")
    codes = sorted(catchments.trust_codes(), key=lambda c: names.get(c, c))
    default = codes.index("RJ1") if "RJ1" in codes else 0
    trust = st.selectbox("Acute trust (or Welsh health board)", codes, index=default, key="share_trust",
                         format_func=lambda c: f"{names.get(c, c)} ({c})")
    table = trust_shares_table(trust)
    served = table[table["share"] >= 0.005]
    main = table[table["share"] >= 0.5]
    st.markdown(f"**{names.get(trust, trust)}** takes at least 0.5% of the hospital admissions of {len(served)} "
                "local authority districts"
                + (f", more than half of them in {len(main)}" if len(main) else "")
                + (f"; its largest share is {table['share'].iat[0]:.0%}, of {table['area_name'].iat[0]}."
                   if len(table) else "."))
    chart_tab, table_tab = st.tabs(["Map", "Table"])
    with chart_tab:
        st.plotly_chart(trust_share_figure(trust), width="stretch", config={"scrollZoom": True, "displaylogo": False},
                        key="trust_share_map")
    with table_tab:
        shown = served.rename(columns={"area_code": "District code", "area_name": "District",
                                       "share": "Share of admissions", "children": "Children attributed"})
        st.dataframe(shown, hide_index=True, width="stretch", height=420,
                     column_config={"Share of admissions": st.column_config.NumberColumn(format="percent"),
                                    "Children attributed": st.column_config.NumberColumn(format="%.0f")})
        export_button("Download table (CSV)", served, f"trust_shares_{trust}.csv", "text/csv",
                      key="trust_shares_csv", subject=trust)
    st.caption(f"{catchments.CAPTION} Districts shaded where the trust takes at least 0.1%; outlines: where "
               "each trust is the main provider. Children aged 0–17: ONS mid-2020 LSOA estimates.")

else:
    left, right, share_col = st.columns(3)
    layer = left.selectbox("Areas of", list(LAYERS), index=list(LAYERS).index("utla"),
                           format_func=lambda k: LAYERS[k].title, key="mis_layer")
    others = [k for k in PLACE_ORDER if k != layer]
    against = right.selectbox("Cut across by", others, index=others.index("icb") if "icb" in others else 0,
                              format_func=lambda k: LAYERS[k].title, key="mis_against")
    min_share = share_col.slider("Ignore overlaps smaller than (% of the area's LSOAs)", 0, 20, 0, step=1) / 100

    table = alignment.misalignment(layer, min_share)
    covered = table[table[f"{against}_areas"] > 0]
    split = covered[covered[f"{against}_crossing"] > 0].sort_values(f"{against}_crossing", ascending=False)
    a_title, b_title = LAYERS[layer].title.lower(), LAYERS[against].title.lower()
    if covered.empty:
        st.info(f"No {a_title} are covered by {b_title}.")
    else:
        worst = split.iloc[0] if not split.empty else None
        sentence = (f"{len(split)} of {len(covered)} {a_title} are cut across by the boundaries of {b_title}"
                    + (f"; the most divided is {worst['name']}, which shares territory with "
                       f"{worst[f'{against}_areas']} of them." if worst is not None else "."))
        st.markdown(f"**{sentence}**")
        m1, m2, m3 = st.columns(3)
        m1.metric(f"Aligned with {LAYERS[against].short}", len(covered) - len(split))
        m2.metric("Cut across", len(split))
        m3.metric("Most partner areas", int(covered[f"{against}_areas"].max()))

        chart_tab, table_tab = st.tabs(["Map", "Table"])
        with chart_tab:
            st.plotly_chart(misalignment_figure(layer, against, min_share), width="stretch", config={"scrollZoom": True, "displaylogo": False},
                            key="misalignment_map")
            st.caption(f"Colour: how many {b_title} cut across each area (0 = wholly inside one, or wholly "
                       f"made of whole ones). Outlines: {b_title}.")
        with table_tab:
            columns = ["name", "code"] + [c for k in others for c in (f"{k}_areas", f"{k}_crossing")] + [
                "split_layers", "crossing_partners"]
            config = {"name": "Area", "code": "Code", "split_layers": "Layers cutting across",
                      "crossing_partners": "Partner areas across a boundary"}
            for k in others:
                config[f"{k}_areas"] = st.column_config.NumberColumn(f"{LAYERS[k].short}: areas overlapped")
                config[f"{k}_crossing"] = st.column_config.NumberColumn(f"{LAYERS[k].short}: cutting across")
            st.dataframe(table.sort_values("crossing_partners", ascending=False)[columns], hide_index=True,
                         column_config=config, width="stretch", height=420)
            export_button("Download table (CSV)", table[columns], f"misalignment_{layer}.csv", "text/csv",
                          key="misalignment_csv", subject=layer)
        if against == "trust" or layer == "trust":
            st.caption(LAYERS["trust"].note)

st.subheader("Layer sources and vintages")
st.table(vintage_table().set_index("Layer"))
st.caption(f"Every layer is drawn from {POLYGONS}. Codes and names come from the official lookups listed in "
           "geodata/manifest.json (Open Government Licence v3.0); docs/REFERENCE_DATA.md says how they are refreshed.")
