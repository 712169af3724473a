"""NHS numbers for synthetic children, made and damaged in bulk.

Numbers come from the range the NHS keeps for test data and never issues (9000000000–9999999999,
``nhs_number.constants.RANGE_NOT_ISSUED_SYNTHETIC``), so no synthetic record can carry a real
patient's number. The Modulus 11 check is the one ``nhs_number.calculate_checksum`` applies;
it is computed here on whole numpy arrays because the package works one number at a time.
"""
from __future__ import annotations

import numpy as np
from nhs_number.constants import RANGE_NOT_ISSUED_SYNTHETIC

_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)  # weights 10..2 for the first nine digits
_POW = 10 ** np.arange(9, -1, -1, dtype=np.int64)  # place values of the ten digits


def digits(numbers: np.ndarray) -> np.ndarray:
    """[n, 10] digit matrix of ten-digit numbers."""
    return (np.asarray(numbers, dtype=np.int64)[:, None] // _POW) % 10


def check_digit(body: np.ndarray) -> np.ndarray:
    """Modulus 11 check digit of nine-digit bodies; 10 means "no valid number"."""
    d = (np.asarray(body, dtype=np.int64)[:, None] // _POW[1:]) % 10
    check = 11 - (d @ _WEIGHTS) % 11
    return np.where(check == 11, 0, check)


def is_valid(numbers: np.ndarray) -> np.ndarray:
    """Modulus 11 validity of ten-digit numbers (vectorised twin of nhs_number.is_valid)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    return (check_digit(numbers // 10) == numbers % 10) & (numbers >= 0) & (numbers < 10**10)


def unique_valid_numbers(n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct valid NHS numbers from the never-issued synthetic range, one per child."""
    lo = RANGE_NOT_ISSUED_SYNTHETIC.start // 10
    hi = RANGE_NOT_ISSUED_SYNTHETIC.end // 10
    # About 1 in 11 bodies has check digit 10 and no valid number; draw a margin and keep the rest.
    draw = int(n * 1.15) + 32
    bodies = lo + rng.choice(hi - lo + 1, size=min(draw, hi - lo + 1), replace=False)
    check = check_digit(bodies)
    ok = check < 10
    bodies, check = bodies[ok][:n], check[ok][:n]
    if len(bodies) < n:
        raise ValueError(f"cannot make {n} distinct NHS numbers")
    return bodies * 10 + check


def mistype(numbers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Change one digit of each number to another digit: always fails the Modulus 11 check.

    Every weight (10..2, and the check digit itself) is non-zero mod 11, so a single changed
    digit always changes the weighted sum's remainder and the check can never still match.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    pos = rng.integers(0, 10, size=len(numbers))
    place = _POW[pos]
    old = (numbers // place) % 10
    new = (old + rng.integers(1, 10, size=len(numbers))) % 10
    return numbers + (new - old) * place
