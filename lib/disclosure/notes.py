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


def method_note(protected: bool) -> str:
    """The sentence a page, export or deck shows about protection (``protected``: the role sees protected
    figures, ``lib.access.roles.aggregates_suppressed(role)``; lib.disclosure sits below lib.access)."""
    return METHOD if protected else UNPROTECTED
