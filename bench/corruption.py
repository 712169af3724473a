"""A corruption model of how names get mistyped, independent of lib/synth's own typos (issue 20).

lib/synth makes its own recording errors (its ``_typo``, nicknames, aliases, false names); a model judged
only on them can learn their quirks. This module damages names in other ways, the ones record-linkage
studies report for hand-keyed and scanned forms:

- ``keyboard``: one letter replaced by a key next to it on a QWERTY keyboard (neighbours worked out from the
  three letter rows and their stagger, not listed by hand);
- ``ocr``: a letter group a scanner or a hurried reader confuses with another ("RN"/"M", "CL"/"D",
  "VV"/"W", "LI"/"U", "I"/"L", "O"/"Q", "E"/"F", "C"/"G");
- ``drop``: one letter left out; ``double``: one letter doubled; ``truncate``: the name cut short
  (at least three letters kept); ``transpose``: two neighbouring letters swapped;
- ``swap``: forename and surname recorded the wrong way round (a record-level error);
- ``split``: a hyphenated surname recorded as one of its parts, or run together.

`apply` takes synthetic encounters (lib.synth output, generated with its own typo rate set to zero) and its
truth, gives a share of children a hyphenated (double-barrelled) surname, and damages each recorded name
with probability `rate` by one operation drawn by `WEIGHTS`. Seeded: the same inputs and seed give the same
output. The names it damages are synthetic; nothing here sees real personal data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ROWS = ("QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM")
ROW_OFFSET = (0.0, 0.25, 0.75)  # how far each row sits to the right of the one above, in key widths
OCR = (("RN", "M"), ("CL", "D"), ("VV", "W"), ("LI", "U"), ("I", "L"), ("O", "Q"), ("E", "F"), ("C", "G"))
WEIGHTS = {"keyboard": 0.25, "ocr": 0.10, "drop": 0.20, "double": 0.15, "truncate": 0.10, "transpose": 0.20}
SWAP_RATE = 0.02  # of records: forename and surname the wrong way round
HYPHENATED_SHARE = 0.08  # of children: a double-barrelled surname
SPLIT_RATE = 0.5  # of records of such children: one part only, or run together


def keyboard_neighbours() -> dict[str, str]:
    """Letters within 1.1 key widths of each other on a staggered QWERTY layout."""
    where = {ch: (r, c + ROW_OFFSET[r]) for r, row in enumerate(ROWS) for c, ch in enumerate(row)}
    return {a: "".join(b for b, (rb, xb) in where.items()
                       if b != a and abs(ra - rb) <= 1 and abs(xa - xb) <= 1.1)
            for a, (ra, xa) in where.items()}


NEIGHBOURS = keyboard_neighbours()


def corrupt(name: str, op: str, rng: np.random.Generator) -> str:
    """`name` (upper case) damaged by one operation; a name too short for it comes back unchanged."""
    n = len(name)
    if op == "keyboard":
        spots = [i for i, ch in enumerate(name) if ch in NEIGHBOURS]
        if not spots:
            return name
        i = spots[rng.integers(len(spots))]
        options = NEIGHBOURS[name[i]]
        return name[:i] + options[rng.integers(len(options))] + name[i + 1:]
    if op == "ocr":
        found = [(i, a, b) for a, b in OCR for i in range(n) if name.startswith(a, i)]
        found += [(i, b, a) for a, b in OCR for i in range(n) if name.startswith(b, i)]
        if not found:
            return corrupt(name, "keyboard", rng)
        i, a, b = found[rng.integers(len(found))]
        return name[:i] + b + name[i + len(a):]
    if op == "drop" and n > 3:
        i = int(rng.integers(1, n))  # the first letter is seldom lost
        return name[:i] + name[i + 1:]
    if op == "double":
        i = int(rng.integers(n))
        return name[:i + 1] + name[i] + name[i + 1:]
    if op == "truncate" and n > 4:
        return name[:int(rng.integers(3, n))]
    if op == "transpose" and n > 2:
        i = int(rng.integers(1, n - 1))
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    return name


def _damage(values: pd.Series, rate: float, rng: np.random.Generator) -> tuple[pd.Series, np.ndarray]:
    ops, weights = list(WEIGHTS), np.array(list(WEIGHTS.values()))
    hit = values.notna().to_numpy() & (rng.random(len(values)) < rate)
    chosen = rng.choice(len(ops), size=len(values), p=weights / weights.sum())
    out = values.to_numpy(dtype=object).copy()
    for i in np.flatnonzero(hit):
        out[i] = corrupt(str(out[i]).upper(), ops[chosen[i]], rng)
    return pd.Series(out, index=values.index, dtype=object), hit


def apply(encounters: pd.DataFrame, truth: pd.DataFrame, rate: float = 0.15, seed: int = 0
          ) -> tuple[pd.DataFrame, dict]:
    """(encounters with names damaged, counts of what was done). `truth` is lib.synth's, same rows."""
    rng = np.random.default_rng(seed)
    out = encounters.copy()
    surname = out["surname"].astype(object)
    children = truth["true_child_id"].to_numpy()
    unique = np.unique(children)
    hyphenated = set(unique[rng.random(len(unique)) < HYPHENATED_SHARE])
    pool = truth["true_surname"].dropna().unique()
    second = {child: str(pool[rng.integers(len(pool))]).upper() for child in sorted(hyphenated)}
    is_hyph = np.array([c in hyphenated for c in children]) & surname.notna().to_numpy()
    split = is_hyph & (rng.random(len(out)) < SPLIT_RATE)
    how = rng.integers(3, size=len(out))
    values = surname.to_numpy().copy()
    for i in np.flatnonzero(is_hyph):
        first, other = str(values[i]).upper(), second[children[i]]
        if not split[i]:
            values[i] = f"{first}-{other}"
        else:
            values[i] = (first, other, f"{first}{other}")[how[i]]
    out["surname"] = pd.Series(values, index=out.index, dtype=object)
    out["forename"], hit_f = _damage(out["forename"].astype(object), rate, rng)
    out["surname"], hit_s = _damage(out["surname"], rate, rng)
    swap = rng.random(len(out)) < SWAP_RATE
    fore, sur = out["forename"].to_numpy().copy(), out["surname"].to_numpy().copy()
    out["forename"] = np.where(swap, sur, fore)
    out["surname"] = np.where(swap, fore, sur)
    return out, {"forenames_damaged": int(hit_f.sum()), "surnames_damaged": int(hit_s.sum()),
                 "swapped": int(swap.sum()), "hyphenated": int(is_hyph.sum()), "split": int(split.sum())}
