"""The crisis net's text layers: normalisation, typo tolerance, segmentation and the prefilter."""

from __future__ import annotations

import pytest

from actors.safety.fuzzy import FuzzyIndex, within_one_edit
from actors.safety.normalise import Aliases, fold_accents, normalise, safe_text, squash_repeats
from actors.safety.prefilter import (
    anchored_matches,
    key_positions,
    required_literals,
    start_keys,
    text_keys,
    tokens,
)
from actors.safety.segments import MAX_SEGMENT, segments, sentence_pairs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I WANT TO DIE", "i want to die"),
        ("k1ll mys3lf", "kill myself"),
        ("$uicide", "suicide"),
        ("Ｋｉｌｌ ｍｙｓｅｌｆ", "kill myself"),  # full-width letters (NFKC)
        ("sui\u200bcide", "suicide"),  # zero-width space
        ("i\u2019m done", "i'm done"),  # curly apostrophe
        ("SUICÍDIO", "suicidio"),  # accents folded
        ("Überdosis", "uberdosis"),
        ("Straße", "strasse"),
        ("took 30mg at 3am", "took 30mg at 3am"),  # numbers with units keep their digits
        ("i   want\n\tto  die", "i want to die"),
    ],
)
def test_normalise_gives_one_spelling(raw, expected):
    assert normalise(raw).folded == expected


def test_accents_kept_in_text_form():
    out = normalise("Me quiero MORIR, está decidido")
    assert out.text == "me quiero morir, está decidido"
    assert out.folded == "me quiero morir, esta decidido"


def test_stretched_letters_pick_the_known_spelling():
    known = {"die", "kill", "myself", "please", "so"}
    assert squash_repeats("diiiiie", known) == "die"
    assert squash_repeats("killllll myselffff", known) == "kill myself"
    assert squash_repeats("soooo", known) == "so"
    assert squash_repeats("nooo way", known) == "no way"  # unknown: one letter
    assert squash_repeats("all good", known) == "all good"  # two letters are left alone


def test_aliases_are_whole_words_only():
    aliases = Aliases({"nn": "non", "q": "que"})
    assert aliases.apply("nn ce la faccio") == "non ce la faccio"
    assert aliases.apply("q hago") == "que hago"
    assert aliases.apply("annnn aq q'") == "annnn aq q'"


@pytest.mark.parametrize("value", ["", "\ud800 lone surrogate \udfff", b"\xff\xfe binary \x00", 12345, "\x00" * 50])
def test_any_input_becomes_valid_text(value):
    text = safe_text(value)
    text.encode("utf-8")  # would raise on a lone surrogate
    normalise(value)


def test_fold_accents_keeps_non_letters():
    assert fold_accents("ça va? 😀 ñ") == "ca va? 😀 n"


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [
        ("suicide", "sucide", True),  # dropped letter
        ("myself", "myslef", True),  # swapped neighbours
        ("overdosed", "overdoesed", True),  # added letter
        ("knife", "knive", True),  # changed letter
        ("suicide", "suicidal", False),
        ("abc", "cab", False),
    ],
)
def test_within_one_edit(a, b, close):
    assert within_one_edit(a, b) is close
    assert within_one_edit(b, a) is close


def test_fuzzy_corrects_key_terms_but_not_known_or_family_words():
    index = FuzzyIndex(["suicide", "myself", "overdosed", "noyer"], known=["putting", "cutting", "thinking"])
    fixed, fixes = index.apply("cant stop thinkng abt sucide, gonna kill myslef")
    assert ("sucide", "suicide") in fixes and ("myslef", "myself") in fixes
    assert "thinking" in fixed  # a lexicon word of 8 letters, one letter dropped
    assert index.correct("putting") is None  # known words are never corrected
    assert index.correct("loyer") is None  # a different first letter is a different word
    assert index.correct("suic") is None  # too short


def test_fuzzy_leaves_another_ending_of_a_key_word_alone():
    index = FuzzyIndex(["pillole", "pastiglie", "suicide"], known=[])
    assert index.correct("pillola") is None  # the morning-after pill is not a typo of "pills"
    assert index.correct("pastiglia") is None
    assert index.correct("pilloel") == "pillole"  # a swap at the end still is
    assert index.correct("suicida") is None
    assert index.correct("suicdie") == "suicide"


def test_fuzzy_vocabulary_tier_refuses_changed_letters():
    index = FuzzyIndex([], known=["geschlagen", "existing"])
    assert index.correct("geschlafen") is None  # slept ≠ hit
    assert index.correct("exisitng") == "existing"


def test_short_message_is_one_segment_and_long_ones_are_bounded():
    assert segments("standing on the roof. just wanted to say bye") == ["standing on the roof. just wanted to say bye"]
    long = ". ".join(f"sentence number {i} goes here" for i in range(200))
    parts = segments(long)
    assert len(parts) > 10
    assert all(len(p) <= 2 * MAX_SEGMENT for p in parts)
    assert segments("") == [] and segments("   ") == []
    assert all(len(p) <= 2 * MAX_SEGMENT for p in segments("a" * 5000))


def test_sentence_pairs_of_a_message_of_one_segment():
    assert sentence_pairs("one. two!") == []  # two sentences: the message itself is the pair
    assert sentence_pairs("one. two! three? four") == ["one. two!", "two! three?", "three? four"]


@pytest.mark.parametrize(
    ("pattern", "keys"),
    [
        (r"kill(?:ing|ed)? my ?self", {"kil"}),
        (r"(?:i|we) want to die", {"i$", "we$"}),
        (r"ki\w+ me", {"ki"}),
        (r"\w+ myself", None),
        (r"k?ms", {"kms", "ms"}),  # the pattern may end inside a longer word
        (r"k?ms\b", {"kms", "ms"}),
        (r"me (?:quiero|kiero) morir", {"me$"}),
        (r"^(?:[\s.,!?]{0,12})(?:bye|adios)", {"^"}),  # only where the segment starts
        (r"(?:nobody can stop me|^(?!.*\bjob\b)i'?ve decided)", {"nob", "^"}),
        (r"(?m)^bye", {"bye"}),  # "^" starts every line here: a match may start mid-segment
    ],
)
def test_start_keys(pattern, keys):
    found = start_keys(pattern)
    assert (found if found is None else set(found)) == keys


def test_required_literals():
    assert required_literals(r"i (?:really )?want to die") == {"i want to die", "i really want to die"}
    assert required_literals(r"x(?:\w+ )?y") is None


def test_prefilter_never_holds_back_a_real_match():
    """For every compiled lexicon pattern and a spread of texts: if the regex matches at a word
    start, the segment's keys meet the pattern's start keys."""
    from actors.safety import load_safety_net

    net = load_safety_net(None)
    texts = [
        "i want to kill myself tonight",
        "me quiero morir",
        "j'ai envie d'en finir",
        "ich will mich umbringen",
        "quero me matar",
        "voglio farla finita",
        "im on the bridge rn",
        "the voices tell me to jump",
        "took like 30 tylenol",
        "kms",
        "unalive myself",
        "mi novio me pegó anoche",
        "ich ritze mich",
    ]
    for text in texts:
        folded = net.normalised(text)
        keys = text_keys(tokens(folded))
        for entry in net.lexicon.patterns.entries:
            match = entry.regex.search(folded)
            if match is None:
                continue
            wanted = start_keys(entry.regex.pattern.removeprefix(r"(?<!\w)"))
            if wanted is not None:
                assert keys & wanted, (entry.where, text)
            literals = required_literals(entry.regex.pattern.removeprefix(r"(?<!\w)"))
            if literals is not None:
                assert any(lit in folded for lit in literals), (entry.where, text)


def test_anchored_matching_finds_what_finditer_finds():
    """Trying each pattern only at the words its start keys allow yields the very matches, in
    order, that scanning the whole segment does: for every shipped pattern, over segments with
    repeated, overlapping and negated phrases, a farewell at the start and digits."""
    from actors.safety import load_safety_net

    net = load_safety_net(None)
    texts = [
        "bye. i took 40 pills and 30 more, bye bye",
        "adieu tout le monde, je suis sur le pont, adieu",
        "i want to die i want to die, i dont want to die, i want to kill myself and i will kill myself",
        "tschüss. ich hab 20 tabletten genommen und dann noch 15 tabletten",
        "me quiero morir... no, no me quiero morir. me mato hoy. me mato",
        "week was fine, work was busy, gym twice. i've decided. tonight i'll do it. anyway, breathing tips?",
        "ho deciso, nessuno mi può fermare. addio",
        "eu vou me matar hoje, sério. eu me mato",
        "lo haré esta noche cuando acabe el turno, ya no hay vuelta atrás",  # "^"-anchored patterns
        "depois do natal, pra não estragar a festa. já tá decidido",
    ]
    seen = 0
    for text in texts:
        for segment in segments(net.normalised(text)):
            words, at = key_positions(segment)
            for entry in net.lexicon.patterns.entries:
                plain = [m.span() for m in entry.regex.finditer(segment)]
                keys = start_keys(entry.regex.pattern.removeprefix(r"(?<!\w)"))
                if keys is None:
                    continue
                positions = sorted({p for key in keys & at.keys() for p in at[key]})
                assert [m.span() for m in anchored_matches(entry.regex, segment, positions)] == plain, entry.where
                seen += len(plain)
            assert words == tokens(segment)
    assert seen > 20  # the texts do reach the patterns


def test_word_filter_agrees_with_plain_matching():
    """The lexicon with all its filters finds exactly what running every pattern would find."""
    from actors.safety import load_safety_net

    net = load_safety_net(None)
    lexicon = net.lexicon
    samples = [
        "my dad keeps his gun in the garage and i keep thinking about it",
        "he said he'll kill me if i leave",
        "je suis sur le pont, adieu",
        "hab alle meine tabletten genommen",
        "tomei todos os remedios de uma vez",
        "ho preso tutte le pastiglie, mi gira la testa",
        "this deadline is killing me",
        "went bungee jumping off a bridge",
        "i'm not suicidal at all",
    ]
    for text in samples:
        folded = net.normalised(text)
        filtered = {h.category for h in lexicon.patterns.hits([folded], lexicon.negation)}
        plain = set()
        for entry in lexicon.patterns.entries:
            if entry.category in plain:
                continue
            for match in entry.regex.finditer(folded):
                from actors.safety.lexicon import _cause

                if _cause(lexicon.negation, entry.language, folded, match, cues=entry.negatable) is not None:
                    continue
                plain.add(entry.category)
                break
        assert filtered == plain, text


def test_no_lexicon_pattern_is_catastrophic():
    """A pattern with nested unbounded repetition is refused by the pack check; none ships."""
    from actors.safety.checks import pattern_shape_problem

    assert pattern_shape_problem(r"(a+)+b") is not None
    assert pattern_shape_problem(r"(?:\w+ ){0,3}die") is None
    from actors.safety import load_safety_net

    for entry in load_safety_net(None).lexicon.patterns.entries:
        assert pattern_shape_problem(entry.regex.pattern) is None, entry.where
