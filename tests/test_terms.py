"""Term matching: normalisation, evasions that must still match, and words that must not."""

import json
import random
import re
import unicodedata

import pytest

from gate_proxy.core.confusables import ascii_lookalike
from gate_proxy.core.terms import TermMatcher, normalize_text, payload_strings
from gate_proxy.core.terms import normalize as terms

SEED_TERMS = ["refund guaranteed", "legal action", "sue"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello worldi"),  # ! is leet for i in the normalised form
        ("  many   spaces\tand\nlines ", "many spaces and lines"),
        ("l3g4l 4ct10n", "legal action"),
        ("s.u.e", "sue"),
        ("S U E them", "sue them"),
        ("ｓｕｅ", "sue"),  # fullwidth letters, NFKC
        ("s\u200bu\u200ce\u2060", "sue"),  # zero-width characters are dropped, not spaced
        ("su\u00ade", "sue"),  # soft hyphen
        ("sue\u0301", "sue"),  # combining accent dropped
        ("Straße", "strasse"),  # casefold
        ("snake_case-and.dots", "snake case and dots"),
        ("", ""),
        ("!!! ", "iii"),
        ("--- ...", ""),
        ("\u0455ue", "sue"),  # Cyrillic dze
        ("LEG\u0410L", "legal"),  # Cyrillic capital A
        ("\u039d\u039f", "no"),  # Greek capital nu, omicron: folded before casefold
        ("\u0406ce", "ice"),  # Cyrillic capital I reads as I, not as TR39's l
        ("tu\u0433n", "turn"),  # Cyrillic ghe is r; "rn" is never folded to m
        ("turn modern", "turn modern"),  # ASCII is never folded
        ("s\x00u\x7fe", "sue"),  # controls inside a word are dropped
        ("a\tb\nc\rd\x85e", "abcde"),  # white-space controls separate (then join as a run)
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # plain and case
        ("We will sue you", "sue"),
        ("WE WILL SUE", "sue"),
        ("I'll take Legal Action.", "legal action"),
        ("Refund guaranteed!", "refund guaranteed"),
        # punctuation and whitespace
        ("Legal-Action!!", "legal action"),
        ("legal@action", "legal action"),
        ("legal|action", "legal action"),
        ("ok! " * 40 + "legal@action", "legal action"),  # many symbol tokens: full re-split
        ("l3gal   action", "legal action"),
        ("legal\n\taction", "legal action"),
        ("(sue)", "sue"),
        ("refund_guaranteed", "refund guaranteed"),
        # leet
        ("5ue", "sue"),
        ("$ue", "sue"),
        ("r3fund gu4r4nt33d", "refund guaranteed"),
        ("|egal action", "legal action"),
        # spelled out / spaced
        ("s.u.e", "sue"),
        ("s u e", "sue"),
        ("we will s-u-e", "sue"),
        ("a s u e", "sue"),
        ("l e g a l action", "legal action"),
        ("l.e.g.a.l a.c.t.i.o.n", "legal action"),
        ("legal a c t i o n", "legal action"),
        ("x l e g a l action", None),  # the run is "xlegal"
        ("legal a c t i o n x", None),  # the run is "actionx"
        ("x l e g a l a c t i o n x", "legal action"),  # inside one run
        # invisible and look-alike characters
        ("s\u200bue", "sue"),
        ("s\u200due", "sue"),
        ("s\ufeffue", "sue"),
        ("su\u00ade", "sue"),
        ("s\u2066ue", "sue"),  # bidi isolate
        ("s\U000e0041ue", "sue"),  # tag character (ASCII smuggling)
        ("s\u3164ue", "sue"),  # Hangul filler
        ("ｓｕｅ", "sue"),
        ("ＬＥＧＡＬ　ＡＣＴＩＯＮ", "legal action"),
        ("sué", "sue"),
        # look-alike letters from other scripts (Unicode TR39 confusables)
        ("leg\u0430l action", "legal action"),  # Cyrillic a
        ("\u0455ue", "sue"),  # Cyrillic dze
        ("\u0405U\u0415", "sue"),  # Cyrillic capitals
        ("legal \u0430\u0441tion", "legal action"),  # Cyrillic a, es
        ("Legal \u0391ction", "legal action"),  # Greek capital alpha
        ("\u0455 u \u0435", "sue"),  # spaced out
        ("\u0455\u0300ue", "sue"),  # with a combining accent
        ("\U0001d42c\U0001d42e\U0001d41e", "sue"),  # mathematical bold
        ("\u0455\u057d\u0435", "sue"),  # Cyrillic s, Armenian u, Cyrillic e
        ("refund guar\u0430nteed", "refund guaranteed"),
        ('{"m": "\\u0455ue"}', "sue"),  # JSON escape of a look-alike
        # control and format characters inside a word
        ("s\x00ue", "sue"),
        ("s\x01ue", "sue"),
        ("s\x1bue", "sue"),
        ("s\x1fue", "sue"),
        ("s\x7fue", "sue"),
        ("s\x80ue", "sue"),
        ("s\x9fue", "sue"),
        ("s\u200eue", "sue"),  # left-to-right mark
        ("s\u061cue", "sue"),  # Arabic letter mark
        ("s\ufff9ue", "sue"),  # interlinear annotation anchor
        ("l\x00egal\x00 action", "legal action"),
        ('{"m": "s\\u0000ue"}', "sue"),  # JSON-escaped NUL
        ("s\x00u\u200be", "sue"),
        # white-space controls still separate words
        ("legal\x0baction", "legal action"),
        ("legal\x0caction", "legal action"),
        ("legal\x85action", "legal action"),
        ("legal\raction", "legal action"),
        # encodings
        ('{"body": "we will \\u0073ue"}', "sue"),
        ('{"body": "legal \\u0061ction"}', "legal action"),
        ('{"\\u0073ue": 1}', "sue"),  # keys are scanned too
        ("s%75e", "sue"),
        ("legal+action", "legal action"),
        ("&#115;ue", "sue"),
        ("s&#x75;e", "sue"),
        ("we will \\u0073ue", "sue"),  # escapes in non-JSON text
        # position: the whole payload is scanned
        ("x " * 20_000 + "sue", "sue"),
        (json.dumps({"pad": "y" * 50_000, "body": "sue"}), "sue"),
        # must not match: words that merely contain a term
        ("Your issue has been resolved.", None),
        ("We will pursue this.", None),
        ("Suede shoes", None),
        ("tissue", None),
        ("legal actions", None),
        ("illegal action", None),
        ("refund guarantee", None),
        ("sue1", None),
        ("", None),
        ('{"issue": "pursue", "note": "suede"}', None),
        ("is\x00sue", None),  # a dropped control does not split a word
        ("pur\u200bsue", None),
        ("\u0441\u0443\u0435", None),  # Cyrillic "cye" is not "sue"
        ("\u03bdue", None),  # Greek nu reads as v
        ("i\u0455\u0455ue", None),  # look-alikes keep word boundaries: "issue"
        ("legal actions\u0455", None),
    ],
)
def test_first_match(payload: str, expected: str | None) -> None:
    assert TermMatcher(SEED_TERMS).first_match(payload) == expected


def test_first_match_returns_original_term_in_policy_order() -> None:
    matcher = TermMatcher(["Legal  Action!", "SUE"])
    assert matcher.first_match("we will sue and take legal action") == "Legal  Action!"
    assert matcher.first_match("we will s.u.e") == "SUE"


def test_term_with_symbol_matches_with_and_without_it() -> None:
    matcher = TermMatcher(["yahoo!"])
    assert matcher.first_match("Yahoo! mail") == "yahoo!"
    assert matcher.first_match("yahoo mail") == "yahoo!"
    assert matcher.first_match("yahoos") is None


def test_empty_matcher_never_matches() -> None:
    assert TermMatcher([]).first_match("anything at all") is None


@pytest.mark.parametrize("term", ["", "   ", "---", "...", "\u200b"])
def test_term_without_letters_is_rejected(term: str) -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        TermMatcher([term])


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"a": "x", "b": ["y", {"c": "z"}]}', "a\nx\nb\ny\nc\nz"),
        ('{"a": "\\u0073ue"}', "a\nsue"),
        ('{"a": 1, "b": true, "c": null}', "a\nb\nc"),
        ('{"k": "first", "k": "second"}', "k\nfirst\nk\nsecond"),  # duplicates all kept
        ('["x", "y"]', "x\ny"),
        ('"just a string"', "just a string"),
        ("not json", "not json"),
        ("42", "42"),
        ('{"broken": ', '{"broken": '),
        ("\ufeff" + '{"a": "b"}', "a\nb"),
    ],
)
def test_payload_strings(payload: str, expected: str) -> None:
    assert payload_strings(payload) == expected


def test_payload_strings_handles_deep_nesting_without_recursion() -> None:
    deep = "[" * 5000 + '"sue"' + "]" * 5000
    # Either decoded (iteratively) or, if the decoder refuses the depth, left as text:
    # both keep "sue" visible to the matcher.
    assert "sue" in payload_strings(deep)
    assert TermMatcher(["sue"]).first_match(deep) == "sue"


def _reference_first_match(matcher: TermMatcher, text: str) -> str | None:
    """The documented matching rules, token by token: slow but plainly right.

    Shares the normalisation (readings, decoded variants, term forms) with the matcher and
    replaces only the regex search: a form matches if its words occur in a row among the
    tokens, or among the tokens with every run of single-character tokens joined, or if
    its letters occur in a row inside such a run.
    """
    forms_by_term = [terms._term_forms(term) for term in matcher.terms]
    found: set[int] = set()
    for variant in terms._decoded_variants(text):
        for reading in terms._readings(variant):
            tokens = reading.split()
            joined = terms._join_single_char_runs(tokens)
            runs = [token for token in joined if len(token) > 1 and token not in tokens]
            runs += ["".join(run) for run in _single_char_runs(tokens)]
            spaced, joined_text = f" {' '.join(tokens)} ", f" {' '.join(joined)} "
            for index, forms in enumerate(forms_by_term):
                for words in forms:
                    needle, compact = f" {' '.join(words)} ", "".join(words)
                    in_run = len(compact) > 1 and any(compact in run for run in runs)
                    if needle in spaced or needle in joined_text or in_run:
                        found.add(index)
    return matcher.terms[min(found)] if found else None


def _single_char_runs(tokens: list[str]) -> list[list[str]]:
    runs: list[list[str]] = [[]]
    for token in tokens:
        if len(token) == 1:
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if len(run) > 1]


def test_matcher_agrees_with_token_reference_on_random_text() -> None:
    # The regex search (tries, look-arounds, loose pre-scan) must find exactly what the
    # token rules find: no lost match, and no match the rules do not allow.
    matcher = TermMatcher([*SEED_TERMS, "ab testing", "gift card", "x", "plan a now", "a1 b2"])
    pieces = ["sue", "s", "u", "e", "legal", "action", "a", "b", "x", "issue", "gift",
              "card", "$", "@", "!", "|", "5", "3", "1", "2", "-", ".", " ", "  ", "\n",
              "testing", "refund", "guaranteed", "c4rd", "plan", "now", "p l a n", "n o w",
              "c a r d", "a c t i o n",
              "\u0455", "\u0430", "\x00", "\u200b", "\t", "\u0435", "\u0391"]  # fmt: skip
    rng = random.Random(20240601)
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        assert matcher.first_match_in_text(text) == _reference_first_match(matcher, text), text


def test_term_with_many_words_matches_spelled_words() -> None:
    # Past _MAX_SPELLINGS combinations the spelled-word variant is one nested pattern.
    term = "one two three four five six seven eight"
    matcher = TermMatcher([term])
    assert matcher.first_match(f"x {term} y") == term
    assert matcher.first_match("one two t h r e e four five six seven e i g h t") == term
    assert matcher.first_match("one two three four five six seven eights") is None
    text = "one two t h r e e f four five six seven eight"  # "t h r e e f" is one run
    assert matcher.first_match(text) is None
    assert _reference_first_match(matcher, text) is None


def test_first_term_in_policy_order_even_when_it_occurs_last() -> None:
    matcher = TermMatcher(["gift card", "wire transfer", "sue"])
    text = "sue " * 1000 + "wire transfer " * 1000 + "g i f t card"
    assert matcher.first_match(text) == "gift card"
    assert matcher.first_match("sue then wire transfer") == "wire transfer"


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("\u0430", "a"),  # CYRILLIC SMALL LETTER A
        ("\u0455", "s"),  # CYRILLIC SMALL LETTER DZE
        ("\u0435", "e"),  # CYRILLIC SMALL LETTER IE
        ("\u039d", "N"),  # GREEK CAPITAL LETTER NU
        ("\u03bd", "v"),  # GREEK SMALL LETTER NU
        ("\u0406", "I"),  # CYRILLIC CAPITAL BYELORUSSIAN-UKRAINIAN I: I, not TR39's l
        ("\u0661", "1"),  # ARABIC-INDIC DIGIT ONE: a digit reads as 1
        ("\u2223", "l"),  # DIVIDES
        ("\u217f", "m"),  # SMALL ROMAN NUMERAL ONE THOUSAND: TR39's "rn" reads as m
        ("\u0181", "B"),  # LATIN CAPITAL LETTER B WITH HOOK: TR39's "'B" without the hook
        ("\u0501", "d"),  # CYRILLIC SMALL LETTER KOMI DE
        ("a", None),  # ASCII is never folded
        ("m", None),
        ("\u4e2d", None),  # CJK: no ASCII look-alike
        ("\u0436", None),  # CYRILLIC SMALL LETTER ZHE
    ],
)
def test_ascii_lookalike(char: str, expected: str | None) -> None:
    assert ascii_lookalike(char) == expected


@pytest.mark.parametrize(
    ("term", "ascii_text"),
    [
        ("tum", "turn"),  # TR39 would fold "rn" to "m"
        ("modem", "modern"),
        ("lce", "Ice"),  # TR39 would fold "I" to "l"
        ("cl", "d"),
        ("vv", "w"),
    ],
)
def test_ascii_text_is_not_skeleton_folded(term: str, ascii_text: str) -> None:
    assert TermMatcher([term]).first_match(f"we {ascii_text} it") is None


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii text",
        "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2018quoted\u2019 \u2014 dash\u00a0nbsp",
        "s\u200bu\u00ade\u2060 \ufeff\x00\x7f\x85",
        "\u0455ue \u0430 mixed caf\u00e9",
        "\u4e2d\u6587 \u0436 \u00df \U0001d42c \ue000 \U0010fffd \ud800",
        "\u3164\uffa0 \u2028\u2029 \u3000",
    ],
)
def test_fast_paths_agree_with_table(text: str) -> None:
    # _kept_reading takes C-speed shortcuts; the per-character table is the definition.
    by_table = unicodedata.normalize("NFKD", text).translate(terms._UNICODE_TABLE)
    assert terms._kept_reading(text) == by_table


def test_common_non_ascii_class_matches_table_for_every_bmp_character() -> None:
    other, spaced = terms._common_non_ascii()
    for code in range(0x80, 0x10000):
        char = chr(code)
        if other.search(char) is None:
            reading = terms._UNICODE_TABLE[code]
            assert reading == (" " if spaced.fullmatch(char) else ""), hex(code)


def test_large_payloads_are_scanned_to_the_end() -> None:
    matcher = TermMatcher(SEED_TERMS)
    filler = "Your issue is one we pursue in turn. " * 60_000  # about 2 MiB
    assert matcher.first_match(filler) is None
    assert matcher.first_match(filler + "\u0455ue") == "sue"
    assert matcher.first_match(filler + "l e g a l action") == "legal action"
    assert matcher.first_match(json.dumps({"pad": filler, "m": "s\x00ue"})) == "sue"
    cyrillic = "\u0441\u0443\u0435\u0442\u0430 " * 200_000  # "суета", 2 MB of Cyrillic
    assert matcher.first_match(cyrillic) is None
    assert matcher.first_match(cyrillic + "leg\u0430l action") == "legal action"


def _regex_unescape(text: str) -> str:
    """Reference: every \\uXXXX and \\xXX replaced in one left-to-right regex pass."""
    pattern = re.compile(r"\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})")
    return pattern.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)


def test_escape_decoding_agrees_with_regex_reference() -> None:
    pieces = ["\\", "\\\\", "u", "x", "U", "N{BULLET}", "0", "07", "3", "ue", "a", "F", "g",
              "\\n", "\\t", "\\u0073", "\\x73", "\\ud83d", " ", "\u0455", "\u00e9", "\U0001f600",
              "'", '"', "\\'"]  # fmt: skip
    rng = random.Random(99)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert terms._decode_escapes(text) == _regex_unescape(text), text


def test_bulk_replaced_astral_ranges_hold_no_assigned_character() -> None:
    # _UNASSIGNED_ASTRAL reads these as spaces without consulting the table: that is only
    # right while this Python's Unicode data assigns nothing there.
    ranges = [(0x40000, 0xDFFFF), (0xE1000, 0x10FFFF)]
    for low, high in ranges:
        assert terms._UNASSIGNED_ASTRAL.fullmatch(chr(low))
        assert terms._UNASSIGNED_ASTRAL.fullmatch(chr(high))
        for code in range(low, high + 1):
            assert unicodedata.category(chr(code)) in ("Cn", "Co"), hex(code)
    assert not terms._UNASSIGNED_ASTRAL.search("\U0003ffff\U000e0041\U000e0fff\uffff")


@pytest.mark.parametrize("run", [1, 2, 3, 5, 16, 17, 100, 100_000])
def test_collapsed_leaves_one_space_between_tokens(run: int) -> None:
    assert terms._collapsed(f" a{' ' * run}b {' ' * run}c ") == " a b c "
