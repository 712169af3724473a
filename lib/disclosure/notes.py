"""What every page, export and board pack tells the user about disclosure control (one wording, one place)."""
from __future__ import annotations

METHOD_NAME = "cell key perturbation"
METHOD = ("Counts are protected by cell key perturbation, the method ONS used for Census 2021: every count a "
          "role below the safeguarding lead sees has small, fixed noise added (at most 2 per smallest "
          "geographic building block, zero stays zero), the same on every page, export and board pack, so "
          "figures add up and cannot be subtracted from one another to reveal a child. Rates, shares and "
          "verdicts are computed from the protected counts.")
UNPROTECTED = ("Exact figures (safeguarding lead): not protected for disclosure. Do not share outside the "
               "partnership's lead role.")
SMALL = "Counts under 10 are marked: after perturbation they may differ from the true count by a few."
#: Published counts below this are "small": said plainly on the page and hatched on maps.
SMALL_BELOW = 10
#: The hatching's legend entry on every web map below the lead.
HATCH_LEGEND = f"Small count (under {SMALL_BELOW}): perturbed"


def method_note(protected: bool) -> str:
    """The sentence a page, export or deck shows about protection (``protected``: the role sees protected
    figures, ``lib.access.roles.aggregates_suppressed(role)``; lib.disclosure sits below lib.access)."""
    return METHOD if protected else UNPROTECTED


def small_note(areas: list[str]) -> str:
    """What a page says when areas the user looks at have a small published count (under ``SMALL_BELOW``)."""
    which = ", ".join(areas)
    return (f"Small counts (under {SMALL_BELOW}) in {which}: perturbed: may differ from the true count by up to "
            "2 per building block (a count of 0 may be a true 1).")
