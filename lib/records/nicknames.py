"""The one table of forename variants: which nicknames, short forms and spellings stand for which forename.

Used twice, so the two uses can never disagree again: lib.records.pseudonymise maps every forename to a
canonical forename before hashing it (``forename_canon_hash``, Splink's "Same forename after nicknames"
level), and the synthetic generator (lib.synth.names) records children under these variants. lib.synth
imports this module; nothing in lib.records imports lib.synth.

Source and reasoning: this is not an official list (there is none for England and Wales). It is the union of
the project's two earlier hand-made tables of common English diminutives and short forms, the generator's
(full name -> nicknames) and the pseudonymiser's (nickname -> full name), which disagreed on 81 of the
generator's 155 pairs: e.g. the generator wrote Harrison as "Harry" while the pseudonymiser read "Harry" as
Henry. Each entry is a full forename and the other forms it is commonly recorded under (nicknames, short
forms, and a few spelling variants such as Steven/Stephen, Catherine/Katherine, Isabel/Isabelle). Extend
it here, for both uses at once; tests/test_synth.py checks the generator's variants are all known to the
pseudonymiser.

One canonical per forename: a variant shared by two forenames (Sam: Samuel and Samantha; Alex; Charlie;
Harry: Harrison and Henry; Meg; Nat; Teddy; Zac; Jon) joins them into one group with one canonical
(``CANONICAL``: every name of a connected group -> the alphabetically first full forename of the group), since
one keyed hash cannot say "Sam is Samuel and Samantha, but Samuel is not Samantha". Sex, date of birth and
the exact forename hash (a higher Splink level) still tell such children apart; the canonical level's
weight is trained on the data, so a looser group only weighs less.
"""
from __future__ import annotations

#: Full forename -> the other forms it is recorded under (Title case; most common first, the generator uses
#: at most four of them).
VARIANTS: dict[str, list[str]] = {
    "Robert": ["Bob", "Rob", "Robbie", "Bobby", "Bert"], "William": ["Will", "Bill", "Billy", "Willie", "Liam"],
    "Thomas": ["Tom", "Tommy"], "James": ["Jim", "Jimmy", "Jamie", "Jimmie"], "Joshua": ["Josh"],
    "Daniel": ["Dan", "Danny"], "Samuel": ["Sam", "Sammy"], "Benjamin": ["Ben", "Benji", "Benny"],
    "Alexander": ["Alex", "Xander", "Al"], "Matthew": ["Matt", "Matty"], "Christopher": ["Chris", "Kit"],
    "Michael": ["Mike", "Mikey", "Mick", "Micky"], "Joseph": ["Joe", "Joey"], "Jacob": ["Jake", "Jakey"],
    "Nathan": ["Nate", "Nat"], "Zachary": ["Zach", "Zak", "Zack", "Zac"], "Harrison": ["Harry"],
    "Frederick": ["Fred", "Freddie", "Freddy"], "Freddie": ["Fred"], "Edward": ["Ed", "Eddie", "Ted", "Teddy"],
    "Oliver": ["Ollie", "Olly"], "Alfred": ["Alfie", "Alf"], "Charles": ["Charlie", "Chas", "Charley"],
    "Anthony": ["Tony", "Ant"], "Andrew": ["Andy", "Drew"], "Stephen": ["Steve", "Steven", "Stevie"],
    "Patrick": ["Pat", "Paddy"], "Dominic": ["Dom"], "Sebastian": ["Seb", "Bash"], "Theo": ["Teddy"],
    "Isaac": ["Zac"], "Mohammed": ["Mo", "Mohd"], "Muhammad": ["Mo", "Mohd"], "Mohammad": ["Mo"],
    "Abdullah": ["Abdul"], "Ibrahim": ["Ibby"], "Kieran": ["Kie"], "Cameron": ["Cam"], "Callum": ["Cal"],
    "Jonah": ["Jon"], "Gabriel": ["Gabe"], "Tristan": ["Tris"], "Reuben": ["Reub"], "Emmanuel": ["Manny"],
    "Jakub": ["Kuba"], "Kacper": ["Kacpi"], "Dafydd": ["Dai", "Dafi"], "Tomos": ["Twm"], "Mitchell": ["Mitch"],
    "Elizabeth": ["Beth", "Liz", "Lizzie", "Libby", "Betty", "Eliza", "Elsie"], "Jessica": ["Jess", "Jessie"],
    "Rebecca": ["Becky", "Becca"],
    "Katherine": ["Kate", "Katie", "Kat", "Katy", "Kathryn", "Catherine", "Cath", "Kitty"],
    "Victoria": ["Vicky", "Tori", "Vicki"], "Samantha": ["Sam", "Sammy"], "Alexandra": ["Alex", "Lexi", "Sasha"],
    "Abigail": ["Abbie", "Abi", "Gail", "Abby"], "Charlotte": ["Lottie", "Charlie", "Lotty"],
    "Isabella": ["Bella", "Izzy"], "Isabelle": ["Izzy", "Belle", "Isabel", "Isabella", "Bella"], "Isobel": ["Izzy"],
    "Eleanor": ["Ellie", "Nell", "Nellie"], "Amelia": ["Millie", "Mia", "Milly"], "Madison": ["Maddie"],
    "Jennifer": ["Jen", "Jenny"], "Natasha": ["Tash", "Tasha"], "Olivia": ["Liv", "Livvy"],
    "Sophie": ["Soph", "Sophia"], "Sophia": ["Soph"], "Georgia": ["Gee", "George", "Georgie"], "Bethany": ["Beth"],
    "Lauren": ["Laurie"], "Megan": ["Meg"], "Gabriella": ["Gabby", "Ella"], "Danielle": ["Dani"],
    "Nicole": ["Nikki"], "Stephanie": ["Steph"], "Harriet": ["Hattie"], "Matilda": ["Tilly", "Tilda"],
    "Florence": ["Flo", "Florrie"], "Beatrice": ["Bea"], "Hannah": ["Han"], "Caitlin": ["Cait"], "Kayleigh": ["Kay"],
    "Jasmine": ["Jas", "Jazz"], "Aleksandra": ["Ola", "Ala"], "Wiktoria": ["Wika"], "Zuzanna": ["Zuza"],
    "Khadija": ["Dija"], "Scarlett": ["Scar"], "Courtney": ["Court"], "Gracie": ["Grace"], "Mollie": ["Moll"],
    "Molly": ["Moll"], "Chelsea": ["Chels"], "Precious": ["Prec"], "David": ["Dave", "Davey"],
    "John": ["Jack", "Johnny", "Jon"], "Nicholas": ["Nick", "Nicky"], "Henry": ["Harry", "Hal"],
    "Archibald": ["Archie"], "Margaret": ["Maggie", "Meg", "Peggy"], "Susan": ["Sue", "Suzy", "Susie"],
    "Amanda": ["Mandy"], "Natalie": ["Nat"], "Mary": ["Polly", "Molly"], "Rose": ["Rosie"], "Evelyn": ["Evie"],
    "Grace": ["Gracie"],
}


def _canonical(variants: dict[str, list[str]]) -> dict[str, str]:
    """Upper-case name -> upper-case canonical: connected groups of VARIANTS, each named after its
    alphabetically first full forename."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for full, others in variants.items():
        for other in others:
            parent[find(other.upper())] = find(full.upper())
    fulls = {full.upper() for full in variants}
    groups: dict[str, list[str]] = {}
    for name in list(parent):
        groups.setdefault(find(name), []).append(name)
    canonical = {}
    for members in groups.values():
        head = min(m for m in members if m in fulls)
        canonical.update({m: head for m in members if m != head})
    return canonical


#: Upper-case forename or variant -> its group's canonical forename (names not here are their own canonical).
CANONICAL: dict[str, str] = _canonical(VARIANTS)


def canonical_forename(name: str) -> str:
    """The canonical forename of an upper-case forename (itself when it has no variants)."""
    return CANONICAL.get(name, name)
