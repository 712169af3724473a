"""Disclosure control for every aggregate a role below the safeguarding lead sees (docs/DISCLOSURE.md).

Two pieces, both deterministic so the same cell is published with the same value everywhere:

- ``cellkey``: ONS-style cell key perturbation. Each record and each linked child carries a keyed record key
  (0-255); a cell's key is the sum of its members' keys modulo 256, and its small noise is looked up in a fixed
  perturbation table by (count, cell key). Identical member sets give identical noise on every page and export.
  Additive counts (records) are perturbed once on the finest cells every published area is a union of ("atoms":
  district x sub-ICB location x trust catchment) and summed, so published counts add up exactly and subtracting
  one from another yields nothing finer than a perturbed atom.
- ``attack``: the attacker's linear programme, used by the tests (and available to an operator) to bound every
  protected cell from everything published.
"""
