"""Linkage: turn encounter records into children (NHS number first, then Splink)."""
