"""Cover text: which characters are kept, and how Korean and Latin lines are broken."""

from __future__ import annotations

import pytest

from passport_pipeline.render.text import fit, printable, width, wrap, wrap_fit

SIZE = 40


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("가을  여행", "가을 여행"),
        ("Łódź İstanbul Zoë", "Łódź İstanbul Zoë"),
        ("서울 😀 trip 🇰🇷", "서울 trip"),
        # Decomposed Hangul (as some keyboards send it) is drawn as the syllables it spells.
        ("\u1100\u1161\u110b\u1173\u11af", "가을"),
        ("tab\there\u200b", "tab here"),
    ],
)
def test_printable_keeps_what_a_font_draws(raw, kept):
    assert printable(raw) == kept


@pytest.mark.parametrize(
    ("text", "max_width_of", "lines"),
    [
        # Korean breaks at a space when the words fit...
        ("해운대 해수욕장", "해수욕장", ["해운대", "해수욕장"]),
        # ...and between syllables when a word is wider than the line.
        ("해운대해수욕장해변열차", "해운대해수욕", ["해운대해수욕", "장해변열차"]),
        # A Latin word is never cut: it keeps a line of its own.
        ("Gyeongbokgung Palace", "Gyeong", ["Gyeongbokgung", "Palace"]),
        ("경복궁", "경복궁", ["경복궁"]),
    ],
)
def test_wrap_breaks_korean_and_latin_where_a_reader_expects(text, max_width_of, lines):
    assert wrap(text, SIZE, width(max_width_of, SIZE)) == lines


def test_wrap_keeps_the_rest_on_the_last_line():
    assert wrap("가 나 다 라", SIZE, width("가", SIZE), max_lines=2) == ["가", "나 다 라"]


def test_a_korean_word_shrinks_before_it_breaks():
    lines, size = wrap_fit("협재해수욕장", SIZE, width("협재해수욕", SIZE), min_size=SIZE / 2)
    assert lines == ["협재해수욕장"]
    assert width("협재해수욕장", size) <= width("협재해수욕", SIZE)


def test_a_long_korean_name_wraps_whole_at_a_smaller_size():
    name = "국립중앙박물관어린이박물관특별전시실"
    lines, size = wrap_fit(name, SIZE, width("국립중앙박물관", SIZE), min_size=SIZE / 2)
    assert size < SIZE
    assert "".join(lines) == name
    assert all(width(line, size) <= width("국립중앙박물관", SIZE) for line in lines)


def test_fit_cuts_with_an_ellipsis_when_shrinking_is_not_enough():
    text, size = fit("가" * 30, SIZE, width("가" * 10, SIZE), min_size=SIZE - 4)
    assert size == SIZE - 4
    assert text.endswith("…")
    assert width(text, size) <= width("가" * 10, SIZE)
