"""When two names of a site, room, physician or technologist are the same name, or nearly.

Why (issue 11): a partial name typed in a hurry ("River" for "Riverside Spine Center", "Chen"
for "Dr. Amelia Chen") used to create a second site or physician, and the dashboards then split
one person's records between two names. Every door that can create a name (the log form's
"Add new", `fluoro-audit log --create-missing`, CSV import) asks this module first:

* ``same_name``: equal after normalising (case, accents, punctuation, whitespace, and for
  physicians the titles and credentials around the name: "Dr.", "MD", "M.D.", "DO", ...).
  Such a name *is* the existing one: it resolves to it and is never created.
* ``near_matches``: existing names that are probably meant (a prefix typed, a surname alone, a
  typo, the same words in another order). A new name with near matches is a warning that must
  be confirmed before it is created.

Pure functions, no database: audit.log.names applies them to the stored names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from difflib import SequenceMatcher

#: The kinds of name a record refers to, in the order forms list them.
NAME_KINDS = ("site", "room", "physician", "technologist")
#: Kinds whose names are people's: titles and credentials around them do not count.
PERSON_KINDS = frozenset({"physician"})
#: Titles before a person's name ("Dr. Amelia Chen").
TITLES = frozenset({"dr", "doctor", "prof", "professor", "mr", "mrs", "ms", "miss"})
#: Credentials after a person's name ("Amelia Chen, MD"; "M.D." reads as "md").
CREDENTIALS = frozenset({"md", "do", "mbbs", "mbchb", "phd", "facs", "faapmr", "np", "pa",
                         "pac", "crna", "rn", "rt", "rtr"})
#: A prefix shorter than this is no evidence ("Ri" is the start of too many names).
MIN_PREFIX = 3
#: How many near matches a message names.
SHOWN = 3

_DOTTED_INITIALS = re.compile(r"\b(?:[^\W\d_]\.){2,}")
_NOT_WORD = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"\d+")


def tokens(name: str, kind: str = "site") -> list[str]:
    """The words of a name as compared: case folded, accents and punctuation removed (letters of
    every script kept: "Ελένη" is a word), and for
    people the leading titles and trailing credentials dropped (never every word: "Dr. Do"
    keeps "do")."""
    decomposed = unicodedata.normalize("NFKD", str(name))
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    text = _DOTTED_INITIALS.sub(lambda m: m.group(0).replace(".", ""), text)
    words = [w for w in _NOT_WORD.split(text) if w]
    if kind in PERSON_KINDS:
        while len(words) > 1 and words[0] in TITLES:
            words = words[1:]
        while len(words) > 1 and words[-1] in CREDENTIALS:
            words = words[:-1]
    return words


def normalise(name: str, kind: str = "site") -> str:
    """The comparison key: two names with the same key are the same name."""
    return " ".join(tokens(name, kind))


def same_name(a: str, b: str, kind: str = "site") -> bool:
    """Whether `a` and `b` are one name written two ways ("dr amelia chen", "Dr. Amelia
    Chen")."""
    key = normalise(a, kind)
    return bool(key) and key == normalise(b, kind)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions); names are short."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _typo_limit(length: int) -> int:
    """How many edits still read as a typo of a name this long."""
    return 1 if length <= 6 else 2 if length <= 14 else 3


def _word_matches(short: str, long: str) -> bool:
    """A word of the shorter name stands for a word of the longer one: equal, a prefix
    ("river" of "riverside"), or a one-letter typo of a long word."""
    if short == long:
        return True
    if len(short) >= MIN_PREFIX and long.startswith(short):
        return True
    return min(len(short), len(long)) >= 5 and levenshtein(short, long) <= 1


def _contained(short: list[str], long: list[str]) -> bool:
    """Every word of `short` matches its own word of `long` ("chen" in "amelia chen"); an
    initial ("a" for "amelia") counts only beside a whole word."""
    free = list(long)
    whole = False
    for word in short:
        match = next((w for w in free if _word_matches(word, w)), None)
        if match is None and len(word) == 1:
            match = next((w for w in free if w.startswith(word)), None)
        elif match is not None:
            whole = True
        if match is None:
            return False
        free.remove(match)
    return whole


def _labels_differ(a: list[str], b: list[str]) -> bool:
    """Both names carry labels (numbers, single letters) and they differ: "OR 1" and "OR 2",
    "Room A" and "Room B", "A. Chen" and "B. Chen" name different things."""
    return bool(a) and bool(b) and a != b


def similarity(a: str, b: str, kind: str = "site") -> float:
    """How near `b` is to `a`, 0 (unrelated) to 1 (the same name); above 0 means near.

    Near: the same words in another order, one name's words inside the other's (a surname
    alone, a prefix typed), or a few typing errors. Two names whose numbers or single letters
    differ are never near ("OR 1" and "OR 2", "Room A" and "Room B", "tech1" and "tech2" are
    different rooms and people).
    """
    ta, tb = tokens(a, kind), tokens(b, kind)
    if not ta or not tb:
        return 0.0
    ka, kb = " ".join(ta), " ".join(tb)
    if ka == kb:
        return 1.0
    if _labels_differ(_DIGITS.findall(ka), _DIGITS.findall(kb)) or _labels_differ(
            [w for w in ta if len(w) == 1 and w.isalpha()],
            [w for w in tb if len(w) == 1 and w.isalpha()]):
        return 0.0
    ratio = SequenceMatcher(None, ka, kb).ratio()
    if sorted(ta) == sorted(tb) or "".join(ta) == "".join(tb):
        return 0.9 + ratio / 20
    short, long = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    if _contained(short, long):
        return 0.6 + ratio * 0.3
    compact_a, compact_b = "".join(ta), "".join(tb)
    if levenshtein(compact_a, compact_b) <= _typo_limit(min(len(compact_a), len(compact_b))):
        return 0.5 + ratio * 0.3
    return 0.0


def near_matches(name: str, candidates: Iterable[str], kind: str = "site",
                 limit: int = SHOWN) -> list[str]:
    """The candidates near `name` (not the same name), nearest first, at most `limit`."""
    scored = []
    for candidate in dict.fromkeys(candidates):
        score = similarity(name, candidate, kind)
        if 0 < score < 1:
            scored.append((-score, candidate))
    return [c for _, c in sorted(scored)[:limit]]


def same_names(name: str, candidates: Iterable[str], kind: str = "site") -> list[str]:
    """The candidates that are `name` written another way (normally one, or none)."""
    key = normalise(name, kind)
    if not key:
        return []
    return [c for c in dict.fromkeys(candidates) if normalise(c, kind) == key]


def did_you_mean(matches: list[str]) -> str:
    """"did you mean 'A'?" or "did you mean 'A' or 'B'?"."""
    quoted = [repr(m) for m in matches]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"did you mean {listed}?"
