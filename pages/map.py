"""Boundaries page: every agency's geography on one map, a place finder, and where they misalign.

Renders only what lib.views.boundaries builds (every sentence, table and figure); the widgets and caching
are here. ``python -m lib.cli view boundaries --param ...`` writes the same view.
"""
from __future__ import annotations

import streamlit as st

from lib import views
from lib.geo import maps
from lib.geo.layers import LAYERS, PLACE_ORDER
from lib.views import boundaries as view_def
from pages import common
from pages.common import column_config, export_button, require_page

ROLE = require_page("boundaries")  # every role: public boundaries only, no records
MAP_CONFIG = {"scrollZoom": True, "displaylogo": False}


@st.cache_resource(show_spinner=False, max_entries=64)
def page_view(role: str, items: tuple):
    """The view for these parameters (its figures are Plotly objects: drawn without re-validation)."""
    data = views.build_with("boundaries", None, dict(items), role)
    return data, data.figures


def build(**params):
    return page_view(ROLE, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())))


def show_messages(data) -> None:
    for text in data.extra.get("warnings", []):
        st.warning(text)


def show_metrics(data) -> None:
    if "metrics" not in data.tables:
        return
    rows = data.tables["metrics"].frame.to_dict("records")
    for column, row in zip(st.columns(len(rows)), rows):
        column.metric(row["label"], row["value"], row["delta"], help=row["help"])


def reset_match() -> None:
    st.session_state["place_match"] = 0


st.title(view_def.TITLE)
st.markdown(view_def.INTRO)

labels = list(view_def.VIEWS.values())
view_label = st.segmented_control("View", labels, default=labels[0], key="view", label_visibility="collapsed") \
    or labels[0]
view_choice = next(k for k, v in view_def.VIEWS.items() if v == view_label)

def clicked_area() -> str:
    """The area clicked on the overlay map, as layer:code of the hover layer (its invisible fill, trace 0)."""
    state = st.session_state.get("boundaries_map") or {}
    points = (state.get("selection") or {}).get("points") or []
    point = next((p for p in points if p.get("curve_number", 0) == 0 and p.get("location")), None)
    return f"{st.session_state.get('hover_layer', 'utla')}:{point['location']}" if point else ""


def map_clicked() -> None:
    """A click on the map answers "what does this area fall in": it replaces any typed place."""
    if clicked_area():
        st.session_state["place_query"] = ""


if view_choice == "overlay":
    st.markdown("**Layers**")
    with st.container(horizontal=True, gap="medium"):
        shown = [key for key, layer in LAYERS.items()
                 if st.toggle(layer.title, value=key in view_def.DEFAULT_LAYERS, key=f"layer_{key}",
                              help=f"{layer.agency}. {layer.note} Drawn as a {layer.dash} line.")]
    hover_col, base_col = st.columns(2)
    hover_layer = hover_col.selectbox("Hover and click details for", list(LAYERS), index=list(LAYERS).index("utla"),
                                      format_func=lambda k: LAYERS[k].title, key="hover_layer")
    basemap = base_col.selectbox("Base map", list(maps.BASEMAPS), index=0, key="basemap")
    canvas, panel = st.columns([5, 2])
    with panel:
        st.subheader("Find a place")
        if "place_query" not in st.session_state and common.shared_area():  # the area chosen on any page
            st.session_state["place_query"] = common.shared_area()
        query = st.text_input("Postcode or area name", placeholder="e.g. LS1 3EX or Rotherham",
                              key="place_query", on_change=reset_match)
        area = "" if query.strip() else clicked_area()
        data, figures = build(view="overlay", layers=shown, hover=hover_layer, basemap=basemap, place=query,
                              match=int(st.session_state.get("place_match") or 0), area=area)
        show_messages(data)
        if data.extra.get("matches"):
            matches = data.extra["matches"]
            st.selectbox("Matching areas", range(len(matches)), format_func=matches.__getitem__,
                         key="place_match")
        if "place" in data.tables:
            st.markdown(data.sentences[0])
            st.table(data.tables["place"].frame.set_index("Geography"))
        else:
            st.caption("Or click an area on the map: every layer it falls in is listed here, with the share of "
                       "its neighbourhoods (LSOAs) where it is split.")
        for text in data.extra.get("info", []):
            st.info(text, icon=":material/info:")

    with canvas:
        st.plotly_chart(figures["map"], width="stretch", config=MAP_CONFIG, key="boundaries_map",
                        on_select=map_clicked, selection_mode="points")

elif view_choice == "trust_shares":
    trusts = view_def.trust_choices()
    default = trusts.index(view_def.DEFAULT_TRUST) if view_def.DEFAULT_TRUST in trusts else 0
    trust = st.selectbox("Acute trust (or Welsh health board)", trusts, index=default, key="share_trust",
                         format_func=lambda c: view_def.trust_label(c))
    data, figures = build(view="trust_shares", trust=trust)
    for sentence in data.sentences:
        st.markdown(sentence)
    chart_tab, table_tab = st.tabs(["Map", "Table"])
    with chart_tab:
        st.plotly_chart(figures["trust_share_map"], width="stretch", config=MAP_CONFIG, key="trust_share_map")
    with table_tab:
        table = data.tables["trust_shares"]
        st.dataframe(table.frame, hide_index=True, width="stretch", height=420, key="trust_shares",
                     column_config=column_config(table))
        export_button("Download table (CSV)", table.frame, f"trust_shares_{trust}.csv", "text/csv",
                      key="trust_shares_csv", subject=trust)
    st.caption(data.notes[0])

else:
    left, right, share_col = st.columns(3)
    layer = left.selectbox("Areas of", list(LAYERS), index=list(LAYERS).index("utla"),
                           format_func=lambda k: LAYERS[k].title, key="mis_layer")
    others = [k for k in PLACE_ORDER if k != layer]
    against = right.selectbox("Cut across by", others, index=others.index("icb") if "icb" in others else 0,
                              format_func=lambda k: LAYERS[k].title, key="mis_against")
    min_share = share_col.slider("Ignore overlaps smaller than (% of the area's LSOAs)", 0, 20, 0, step=1)
    data, figures = build(view="misalignment", layer=layer, against=against, min_share=min_share)
    for text in data.extra.get("info", []):
        st.info(text)
    notes = list(data.notes)
    if "misalignment" in data.tables:
        st.markdown(data.sentences[0])
        show_metrics(data)
        chart_tab, table_tab = st.tabs(["Map", "Table"])
        with chart_tab:
            st.plotly_chart(figures["misalignment_map"], width="stretch", config=MAP_CONFIG, key="misalignment_map")
            st.caption(notes.pop(0))
        with table_tab:
            table = data.tables["misalignment"]
            st.dataframe(table.frame, hide_index=True, column_config=column_config(table), width="stretch",
                         height=420, key="misalignment")
            export_button("Download table (CSV)", table.frame, f"misalignment_{layer}.csv", "text/csv",
                          key="misalignment_csv", subject=layer)
    for note in notes[:-1]:  # the trust note where trust catchments are involved
        st.caption(note)

data_notes = data.notes
st.subheader(data.tables["vintages"].title)
st.table(data.tables["vintages"].frame.set_index("Layer"))
st.caption(data_notes[-1])
