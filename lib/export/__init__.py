"""Exports (issue 6): the board pack (PowerPoint), chart images (PNG) and tables (CSV).

- ``csv_safe``: CSV that is safe to open in a spreadsheet (formula-like cells neutralised).
- ``images``: Plotly figures to PNG with kaleido and the system Chromium, offline, one browser reused.
- ``boardpack``: the deck built with python-pptx; the page and ``python -m lib.cli boardpack`` share it.
- ``commands``: the ``boardpack`` sub-command.

Every export for an aggregate-only role is built from the view builders' PageData, already protected by the
disclosure-control service (``lib.disclosure.service``, cell key perturbation).
"""
