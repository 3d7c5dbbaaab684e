"""Near matching of names (issue 11), pure: which names are the same name written another way,
which are probably meant, and which are different things that only look alike."""

from __future__ import annotations

import pytest

from audit.log.near_names import (
    did_you_mean,
    levenshtein,
    near_matches,
    normalise,
    same_name,
    same_names,
    similarity,
)

SITES = ["Riverside Spine Center", "Lakeside Spine Center", "Main Clinic"]
PHYSICIANS = ["Dr. Amelia Chen", "Dr. Rahul Mehta", "Dr. Hannah Weiss", "Dr. Li Wei"]


@pytest.mark.parametrize(("typed", "stored"), [
    ("dr amelia chen", "Dr. Amelia Chen"),
    ("Amelia Chen, M.D.", "Dr. Amelia Chen"),
    ("DR.  AMELIA   CHEN", "Dr. Amelia Chen"),
    ("Amelia Chen MD", "Dr. Amelia Chen"),
    ("Dr Amelia Chen, DO", "Dr. Amelia Chen"),
    ("Dr. Sofia Alvarez", "Dr. Sofia Álvarez"),
])
def test_titles_credentials_case_accents_and_punctuation_do_not_make_a_new_physician(
    typed: str, stored: str
) -> None:
    assert same_name(typed, stored, "physician")
    assert normalise(typed, "physician") == "amelia chen" or "alvarez" in normalise(typed,
                                                                                     "physician")
    assert near_matches(typed, [stored], "physician") == []  # the same name is not "near"


def test_a_title_alone_is_a_name_not_nothing() -> None:
    assert normalise("Dr. Do", "physician") == "do"
    assert not same_name("Dr. Do", "Dr. Amelia Chen", "physician")


def test_titles_count_for_sites_and_rooms() -> None:
    """Only people's names lose their titles: "Dr" in a site's name is part of it."""
    assert normalise("Dr. Smith Clinic", "site") == "dr smith clinic"


@pytest.mark.parametrize(("typed", "meant"), [
    ("Chen", "Dr. Amelia Chen"),  # the surname alone (token containment)
    ("Dr. Chen", "Dr. Amelia Chen"),
    ("A. Chen", "Dr. Amelia Chen"),  # an initial beside the surname
    ("Chen, Amelia", "Dr. Amelia Chen"),  # the same words in another order
    ("Amelie Chen", "Dr. Amelia Chen"),  # a typo
    ("Hanna Weiss", "Dr. Hannah Weiss"),
])
def test_a_physician_typed_short_or_wrong_is_near_the_stored_one(typed: str, meant: str) -> None:
    assert near_matches(typed, PHYSICIANS, "physician")[0] == meant


@pytest.mark.parametrize(("typed", "meant"), [
    ("River", "Riverside Spine Center"),  # partial typing: a prefix
    ("Riverside", "Riverside Spine Center"),
    ("riverside spine centre", "Riverside Spine Center"),
    ("Main Clinc", "Main Clinic"),
])
def test_a_partial_or_misspelt_site_is_near_the_stored_one(typed: str, meant: str) -> None:
    assert near_matches(typed, SITES, "site") == [meant]


@pytest.mark.parametrize(("a", "b"), [
    ("OR 1", "OR 2"), ("OR 1", "OR 10"), ("Room A", "Room B"), ("tech1", "tech2"),
    ("A. Chen", "B. Chen"), ("Lakeside Spine Center", "Riverside Spine Center"),
    ("Dr. Chen", "Dr. Weiss"), ("Ri", "Riverside Spine Center"), ("C-arm 1", "OR 1"),
])
def test_names_that_only_look_alike_are_not_near(a: str, b: str) -> None:
    """Numbers and single letters label different rooms and people; two letters are no
    evidence; a shared suffix ("Spine Center") is not a typo."""
    assert similarity(a, b, "physician" if "Chen" in a else "room") == 0
    assert near_matches(a, [b], "room") == []


def test_the_same_words_written_apart_are_near_not_the_same() -> None:
    assert near_matches("OR1", ["OR 1", "OR 2"], "room") == ["OR 1"]
    assert not same_name("OR1", "OR 1", "room")


def test_near_matches_come_nearest_first_and_at_most_three() -> None:
    names = ["Dr. Amelia Chen", "Dr. Li Chen", "Dr. Chen Wu", "Dr. Max Chen", "Dr. Weiss"]
    found = near_matches("Chen", names, "physician")
    assert len(found) == 3 and "Dr. Weiss" not in found
    assert near_matches("Amelie Chen", names, "physician") == ["Dr. Amelia Chen"]
    assert near_matches("dr amelia chen", names, "physician") == []  # the same, not near


def test_same_names_finds_every_spelling_of_one_name() -> None:
    assert same_names("chen amelia md", ["Dr. Amelia Chen", "Amelia Chen, MD"],
                      "physician") == []
    assert same_names("amelia chen", ["Dr. Amelia Chen", "Amelia Chen, MD", "Chen"],
                      "physician") == ["Dr. Amelia Chen", "Amelia Chen, MD"]


def test_levenshtein_counts_edits() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("chen", "chen") == 0


def test_did_you_mean_lists_names_as_a_question() -> None:
    assert did_you_mean(["Dr. Amelia Chen"]) == "did you mean 'Dr. Amelia Chen'?"
    assert did_you_mean(["A", "B", "C"]) == "did you mean 'A', 'B' or 'C'?"


def test_names_in_other_scripts_are_compared_too() -> None:
    assert same_name("ΕΛΕΝΗ Παπαδοπούλου", "Ελένη Παπαδοπούλου", "physician")
    assert near_matches("Ελένη", ["Ελένη Παπαδοπούλου", "Łukasz Żółć"], "physician") == [
        "Ελένη Παπαδοπούλου"]
    assert same_name("Lukasz Zolc", "Łukasz Żółć", "physician") is False  # Ł is its own letter
    assert near_matches("Lukasz Zolc", ["Łukasz Żółć"], "physician") == ["Łukasz Żółć"]
