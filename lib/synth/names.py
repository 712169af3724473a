"""Name vocabularies for synthetic children: forenames, surnames, nicknames (lib.records.nicknames) and typos.

Names are held as integer codes into fixed vocabularies so that a whole run can choose, alter and
falsify names with numpy indexing instead of per-record string work; strings are only made at
the end by one ``take``. Frequencies are fixed by this module (not by the run's seed) so that two
runs with different seeds still draw from the same population of names, as two real samples would.

Forenames are the kind given to children born in England and Wales 2005–2015 (ONS baby-name
rankings of those years, by memory; order is roughly by popularity). Surnames: the commonest
British surnames in rank order, then a long tail of English place-style surnames built from
prefix + suffix (Ashford, Bradley, ...), so surname frequencies are heavy-tailed as real ones
are: Smith, Jones and Williams are common and most surnames are rare.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Nicknames a child may give instead of their registered name (or be recorded under): the one table the
# pseudonymiser also reads (lib.records.nicknames), so every variant written here is one it knows.
from lib.records.nicknames import VARIANTS as NICKNAMES

BOYS = """
Jack Oliver Thomas Harry Joshua Alfie Charlie Daniel James William Samuel George Joseph Lewis
Ethan Mohammed Dylan Benjamin Alexander Jacob Ryan Liam Jake Max Luke Tyler Callum Matthew
Jayden Oscar Adam Riley Leo Archie Henry Noah Logan Kai Harvey Isaac Lucas Finley Mason Louie
Nathan Connor Cameron Kieran Aaron Owen Reece Bradley Jamie Michael Christopher Jordan Kyle Toby
Rhys Evan Caleb Muhammad Ali Ibrahim Yusuf Zain Ayaan Harrison Jenson Theo Freddie Sebastian
Elliot Joel Alex Robert Edward Frankie Tommy Stanley Jude Reuben Rory Sam Zachary Ashton Brandon
Declan Corey Jay Billy Ben Morgan Elliott Charles Dominic Leon Patrick Marcus Tristan Sonny Ronnie
Arthur Bobby Teddy Albie Hugo Austin Ollie Harley Jesse Carter Alfred Kayden Casey Frederick Mohammad
Hamza Omar Hassan Bilal Adil Ahmed Haris Ismail Abdullah Kacper Jakub Filip Oskar Szymon Dawid
Shay Rhys Ieuan Dafydd Cai Osian Gethin Aled Tomos Iwan Lloyd Ewan Fraser Gabriel Aiden Jonah
Felix Ryley Zak Josh Mikey Cody Ellis Kaiden Mitchell Lennon Tyler Aryan Arjun Krishan Rohan Dev
Kofi Kwame Tayo Emmanuel Samuel David Andrew Peter Anthony Mark Paul Stephen Kevin Lee Craig Darren
""".split()

GIRLS = """
Olivia Emily Jessica Sophie Chloe Lily Ruby Grace Isabella Amelia Ellie Mia Charlotte Evie Hannah
Lucy Megan Ella Isabelle Katie Holly Emma Millie Amy Abigail Molly Ava Poppy Isla Freya Lauren Erin
Leah Madison Phoebe Scarlett Daisy Eva Caitlin Summer Jasmine Bethany Rebecca Elizabeth Georgia
Niamh Rachel Alice Layla Imogen Maisie Sophia Zara Aisha Amber Courtney Shannon Paige Jade Nicole
Jodie Kayleigh Rosie Eleanor Harriet Sienna Lexi Esme Matilda Florence Anna Victoria Katherine
Alexandra Samantha Abbie Demi Kacey Tia Maya Hollie Libby Keira Eloise Gracie Darcey Jorja Tilly
Lacey Skye Willow Ivy Mollie Harriet Elsie Lola Brooke Nevaeh Aimee Casey Chelsea Danielle Natasha
Gabriella Jennifer Kirsty Leanne Stacey Kelsey Tegan Ffion Cerys Seren Alys Nia Carys Mali Lowri
Fatima Maryam Aaliyah Ayesha Hafsa Khadija Zainab Amira Inaya Hana Safa Zoya Aleksandra Zuzanna
Julia Maja Oliwia Wiktoria Lena Amelie Thea Orla Aoife Cara Eden Erin Kiera Kayla Tanya Toni
Charlie Frankie Billie Bella Isobel Martha Beatrice Rose Mary Sarah Laura Louise Emma Stephanie
Precious Blessing Favour Esther Ruth Deborah Tiana Shanice Tamara Keisha Jordan Melissa Naomi
""".split()

# The commonest British surnames, most common first (ONS / Office for National Statistics name
# studies; order approximate). Their frequencies follow Zipf's law from Smith at ~1.1% down.
COMMON_SURNAMES = """
Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson Wright
Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin Cooper Hill
Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson Davis Parker
Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy
Miller Cox Richards Khan Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman
Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight
Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher
Walsh Kaur Gibson Howard Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks
West Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth Perry Ryan
Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster Hunter Gregory Carr Lowe
Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins Harding Porter Robertson Newton
Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson Parry Burgess Bishop
Walton Burns Nicholson Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton Byrne Sutton McDonald
Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss McCarthy Chambers O'Neill
Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon Doyle Wallace George Jordan Hutchinson Rahman
Miah Islam Uddin Akhtar Iqbal Mahmood Hussein Nowak Kowalski Wisniewski Mensah Okafor Adeyemi Owusu
Boateng Campbell-Smith Smith-Jones Lloyd-Davies Ince Rowlands Pritchard Jones-Evans Vaughan Powell
Llewellyn Prosser Bevan Meredith Gwynne Howells Jenkins Morgan-Price Kaya Yilmaz Silva Santos Costa
""".split()

SURNAME_PREFIXES = """
Ash Brad Brom Cal Chad Craw Dun Ed Fair Far Gold Green Hal Hart Hay Hol Hamp Kings Lang Lin Mar Mid
New North Old Pen Red Rich Rother Sand Shel South Stan Stock Sum Thorn Wake Wal War Wes Whit Wil Wind
Wood Bran Brock Bux Chel Clay Dar Dray Elm Hather Hen Horn Ing Kirk Lock Mort Nor Pick Ship Sker Tal
Tan Ux Wen Yard Hock Bur Cot Dal Fen Gar Hun Lund Mel Rad Sel Sher Thur Tod
""".split()

SURNAME_SUFFIXES = """
ford ley ton worth field wood by ham shaw well more combe den ridge stone wick croft dale hurst land
bury cliffe holme ington wright thwaite stead lock mere brook
""".split()

# Zipf exponents: steep for the common list (Smith ≈ 1% of children), flatter for the long tail.
_COMMON_ZIPF = 1.0
_TAIL_ZIPF = 0.6
_COMMON_MASS = 0.45  # share of children whose surname is on the common list
_FORENAME_ZIPF = 0.9


def _dedupe(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _zipf(n: int, s: float, offset: float = 1.0) -> np.ndarray:
    w = 1.0 / (np.arange(n) + offset) ** s
    return w / w.sum()


_KEYBOARD = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm",
    "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji",
    "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}


def _typo(name: str, rng: np.random.Generator) -> str:
    """One keying error: adjacent transposition, dropped, doubled or neighbouring-key letter.

    The first letter is left alone most of the time, as it is in real keying errors; a variant
    always differs from the name it came from.
    """
    for _ in range(20):
        chars = list(name)
        n = len(chars)
        kind = rng.integers(4)
        pos = int(rng.integers(1, n)) if n > 1 else 0
        if kind == 0 and n > 2:  # transpose pos-1, pos (never the first letter)
            pos = max(pos, 2) if n > 2 else pos
            chars[pos - 1], chars[pos] = chars[pos], chars[pos - 1]
        elif kind == 1 and n > 3:  # drop
            del chars[pos]
        elif kind == 2:  # double
            chars.insert(pos, chars[pos])
        else:  # neighbouring key
            c = chars[pos].lower()
            if c in _KEYBOARD:
                repl = _KEYBOARD[c][int(rng.integers(len(_KEYBOARD[c])))]
                chars[pos] = repl.upper() if chars[pos].isupper() else repl
        out = "".join(chars)
        if out != name and out:
            return out[0].upper() + out[1:]
    return name + name[-1]


@dataclass(frozen=True)
class Vocab:
    """A name vocabulary: strings plus index tables for nicknames and typo variants.

    ``strings[i]`` is a name; ``typo[i, k]`` is the index of its k-th typo variant (variants are
    appended to ``strings``); ``nick[i, :nick_n[i]]`` are the indices of its nicknames.
    """

    strings: np.ndarray  # object array of str
    typo: np.ndarray  # int32 [n_base, K]
    nick: np.ndarray  # int32 [n_base, 4], -1 padded
    nick_n: np.ndarray  # int8 [n_base]


@dataclass(frozen=True)
class Names:
    forenames: Vocab
    surnames: Vocab
    boy_ids: np.ndarray  # indices into forenames.strings
    boy_p: np.ndarray
    girl_ids: np.ndarray
    girl_p: np.ndarray
    surname_ids: np.ndarray
    surname_p: np.ndarray


TYPO_VARIANTS = 8


def _vocab(base: list[str], nick_map: dict[str, list[str]], rng: np.random.Generator) -> Vocab:
    words = list(base)
    index = {w: i for i, w in enumerate(words)}
    for nicks in nick_map.values():
        for nk in nicks:
            if nk not in index:
                index[nk] = len(words)
                words.append(nk)
    n_base = len(words)
    nick = np.full((n_base, 4), -1, dtype=np.int32)
    nick_n = np.zeros(n_base, dtype=np.int8)
    for name, nicks in nick_map.items():
        if name in index:
            i = index[name]
            ids = [index[x] for x in nicks if x != name][:4]
            nick[i, : len(ids)] = ids
            nick_n[i] = len(ids)
    typo = np.empty((n_base, TYPO_VARIANTS), dtype=np.int32)
    for i in range(n_base):
        for k in range(TYPO_VARIANTS):
            v = _typo(words[i], rng)
            if v not in index:
                index[v] = len(words)
                words.append(v)
            typo[i, k] = index[v]
    return Vocab(np.array(words, dtype=object), typo, nick, nick_n)


@lru_cache(maxsize=1)
def names() -> Names:
    """The name vocabularies and their frequencies (fixed, seed-independent, built once)."""
    rng = np.random.default_rng(20230401)  # fixed: the population of names does not depend on a run's seed
    boys, girls = _dedupe(BOYS), _dedupe(GIRLS)
    forename_base = _dedupe(boys + girls)
    fore = _vocab(forename_base, NICKNAMES, rng)
    fidx = {w: i for i, w in enumerate(fore.strings[: len(forename_base)])}

    common = _dedupe(COMMON_SURNAMES)
    common_set = set(common)
    tail = [p + s for p in SURNAME_PREFIXES for s in SURNAME_SUFFIXES]
    tail = [t for t in _dedupe(tail) if t not in common_set]
    order = rng.permutation(len(tail))  # which compound names are the commoner ones
    tail = [tail[i] for i in order]
    sur_base = common + tail
    sur = _vocab(sur_base, {}, rng)
    p = np.concatenate([_COMMON_MASS * _zipf(len(common), _COMMON_ZIPF, 12.0),
                        (1 - _COMMON_MASS) * _zipf(len(tail), _TAIL_ZIPF, 20.0)])
    return Names(
        forenames=fore,
        surnames=sur,
        boy_ids=np.array([fidx[w] for w in boys], dtype=np.int32),
        boy_p=_zipf(len(boys), _FORENAME_ZIPF, 8.0),
        girl_ids=np.array([fidx[w] for w in girls], dtype=np.int32),
        girl_p=_zipf(len(girls), _FORENAME_ZIPF, 8.0),
        surname_ids=np.arange(len(sur_base), dtype=np.int32),
        surname_p=p / p.sum(),
    )
