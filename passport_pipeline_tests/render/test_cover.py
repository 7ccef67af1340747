"""The local renderer draws a real, deterministic PNG cover from a month's visits."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from PIL import Image

from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import CoverRequest, Visit
from passport_pipeline.render import text as typeset
from passport_pipeline.render.cover import (
    MAX_STAMPS,
    PALE_GOLD,
    choose_stamps,
    draw_cover,
    render_cover,
)

OCTOBER = Month(2026, 10)


def visit(name: str, day: int, city: str = "Seoul", hour: int = 3) -> Visit:
    return Visit(name, "cafe", city, "South Korea", datetime(2026, 10, day, hour, tzinfo=UTC))


def request(
    title: str = "Seoul Soul", visits: tuple[Visit, ...] | None = None, nickname: str = "minji"
) -> CoverRequest:
    if visits is None:
        visits = (
            visit("Gyeongbokgung Palace", 3),
            visit("Gwangjang Market", 5),
            visit("Gyeongbokgung Palace", 9),
            visit("Haeundae Beach", 12, city="Busan"),
        )
    return CoverRequest("a prompt", OCTOBER, nickname, title, visits)


def many_places(count: int) -> tuple[Visit, ...]:
    # The first three places are visited three times each, the rest once: a known ranking.
    visits = []
    for i in range(count):
        for repeat in range(3 if i < 3 else 1):
            visits.append(visit(f"Place {i:02d}", 1 + (i + repeat) % 28))
    return tuple(visits)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_cover_is_a_png_of_the_requested_size():
    default = decode(render_cover(request()))
    assert default.format == "PNG"
    assert default.size == (768, 1024)
    small = decode(render_cover(request(), width=480, height=640))
    assert small.format == "PNG"
    assert small.size == (480, 640)


def test_cover_is_drawn_not_blank():
    image = decode(render_cover(request())).convert("RGB")
    # A background, gold lettering and several stamp inks: far more than a handful of colours.
    assert len(image.getcolors(maxcolors=1 << 20)) > 200


def test_same_request_gives_identical_bytes():
    assert render_cover(request()) == render_cover(request())


def test_same_request_gives_identical_bytes_in_another_process():
    # A fresh interpreter with another string-hash seed must draw exactly the same cover.
    script = (
        "import hashlib, sys; from passport_pipeline_tests.render.test_cover import request; "
        "from passport_pipeline.render.cover import render_cover; "
        "sys.stdout.write(hashlib.sha256(render_cover(request())).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == hashlib.sha256(render_cover(request())).hexdigest()


def test_different_visits_give_different_images():
    other = (visit("Seoul Forest", 20), visit("Senso-ji", 22, city="Tokyo"))
    assert render_cover(request()) != render_cover(request(visits=other))


def test_different_titles_give_different_images():
    assert render_cover(request(title="Seoul Soul")) != render_cover(request(title="Market Days"))


@pytest.mark.parametrize(
    "title",
    [
        "Weekend 🎉🇰🇷 trips ✈️",
        "나의 서울 여행",
        "A " + "very long title " * 60,
        "quotes \"and\" 'more'\nnew lines\tand <b>{{markup}}</b>",
        "",
        "\u200b\u202e",
    ],
)
def test_odd_titles_still_render(title):
    image = decode(render_cover(request(title=title, nickname="여행자 Zoë 😀")))
    assert image.size == (768, 1024)


def test_korean_place_names_still_render():
    visits = (visit("경복궁", 3), visit("광장시장", 4, city="서울"))
    assert decode(render_cover(request(visits=visits))).size == (768, 1024)


def test_a_month_without_visits_still_renders():
    assert decode(render_cover(request(visits=()))).size == (768, 1024)


def test_thirty_places_render():
    assert decode(render_cover(request(visits=many_places(30)))).size == (768, 1024)


def test_many_places_keep_the_last_slot_for_more():
    stamps, hidden = choose_stamps(many_places(30))
    assert len(stamps) == MAX_STAMPS - 1
    assert hidden == 30 - (MAX_STAMPS - 1)
    assert len({stamp.name for stamp in stamps}) == len(stamps)


def test_most_visited_places_come_first():
    stamps, _ = choose_stamps(many_places(30))
    assert [stamp.name for stamp in stamps[:3]] == ["Place 00", "Place 01", "Place 02"]
    assert [stamp.visits for stamp in stamps[:4]] == [3, 3, 3, 1]


def test_places_that_fit_are_all_stamped():
    stamps, hidden = choose_stamps(many_places(MAX_STAMPS))
    assert (len(stamps), hidden) == (MAX_STAMPS, 0)


def test_stamp_day_is_the_first_visit_on_the_seoul_calendar():
    late = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)  # 1 November, 00:30 in Seoul
    visits = (
        Visit("Seoul Forest", "park", "Seoul", "South Korea", late + timedelta(days=2)),
        Visit("Seoul Forest", "park", "Seoul", "South Korea", late),
    )
    [stamp], hidden = choose_stamps(visits)
    assert (stamp.first_visit_label, stamp.visits, stamp.city, hidden) == ("01 NOV", 2, "Seoul", 0)


# Users as the app has them: Korean, mixed and Latin titles, nicknames, places and cities.
KOREAN = (
    "가을 여행",
    "여행자",
    (("경복궁", "서울"), ("광장시장", "서울"), ("해운대 해수욕장", "부산"), ("불국사", "경주")),
)
MIXED = (
    "Seoul 산책 2026",
    "Zoë 김",
    (("Namsan 서울타워", "서울"), ("Café Onion 안국", "서울"), ("Sensō-ji 센소지", "Tokyo")),
)
LATIN = (
    "Weekend Wanderer",
    "Łukasz",
    (("Gyeongbokgung Palace", "Seoul"), ("Kraków Old Town", "Kraków"), ("Şişli", "İzmir")),
)


@pytest.fixture(scope="module")
def character_maps() -> list[dict[int, str]]:
    """What each font of the chain really holds, read from its own character map."""
    return [TTFont(path, lazy=True).getBestCmap() for path in typeset.font_files()]


def user_request(title: str, nickname: str, places) -> CoverRequest:
    visits = tuple(visit(name, 3 + i, city=city) for i, (name, city) in enumerate(places))
    return request(title=title, visits=visits, nickname=nickname)


def drawn_phrases(texts: tuple[str, ...]) -> set[str]:
    """Each line drawn, and each pair of consecutive lines rejoined (a wrapped name)."""
    pairs = list(itertools.pairwise(texts))
    return {*texts, *(f"{a}{b}" for a, b in pairs), *(f"{a} {b}" for a, b in pairs)}


@pytest.mark.parametrize("user", [KOREAN, MIXED, LATIN], ids=["korean", "mixed", "latin"])
def test_cover_shows_the_users_own_text(user, character_maps):
    title, nickname, places = user
    texts = draw_cover(user_request(title, nickname, places)).texts
    assert texts[1] == title
    phrases = drawn_phrases(texts)
    for name, city in places:
        assert name in phrases
        assert city.upper() in texts
    assert any(line.startswith(f"HOLDER  {nickname}   ·") for line in texts)
    # Every character is drawn by a font whose character map has it: no missing-glyph box.
    for char in "".join(texts).replace(" ", ""):
        assert ord(char) in character_maps[typeset.font_for(char)], char


def test_hangul_is_drawn_by_the_korean_font_and_latin_by_the_latin_one(character_maps):
    assert [index for index, _ in typeset.runs("가을 Autumn 여행")] == [1, 0, 1]
    assert ord("가") not in character_maps[0]
    assert ord("Ł") not in character_maps[1]  # why the chain starts with a Latin font


def title_ink(title: str, month: Month = OCTOBER) -> set[tuple[int, int]]:
    """The pixels of the title band in the title's colour, whatever the background."""
    image = decode(render_cover(CoverRequest("p", month, "여행자", title, ()))).convert("RGB")
    return {
        (x, y)
        for y in range(222, 272)
        for x in range(60, 708)
        if sum(abs(a - b) for a, b in zip(image.getpixel((x, y)), PALE_GOLD, strict=True)) < 60
    }


def test_two_korean_titles_are_drawn_differently():
    autumn, winter = title_ink("가을 여행"), title_ink("겨울 바다")
    # The measure ignores the background: the same title on another month's colours matches.
    assert len(autumn ^ title_ink("가을 여행", Month(2026, 3))) < len(autumn) * 0.05
    assert len(autumn) > 500
    assert len(autumn ^ winter) > len(autumn) * 0.5
    assert len(autumn ^ title_ink("")) > len(autumn) * 0.5  # not the "My Passport" fallback


def test_a_character_no_font_has_is_dropped_cleanly():
    texts = draw_cover(request(title="여행 😀🇰🇷 trip", nickname="여행자 👍")).texts
    assert texts[1] == "여행 trip"
    assert texts[-1].startswith("HOLDER  여행자   ·")
    # No box where the emoji were: the title's pixels are those of the title without them
    # (give or take the edges of letters on another background colour).
    plain = title_ink("여행 trip")
    assert len(title_ink("여행 😀🇰🇷 trip") ^ plain) < len(plain) * 0.05


@pytest.mark.parametrize(
    "name",
    [
        "해운대해수욕장해변열차정거장",
        "국립중앙박물관 어린이박물관",
        "Dongdaemun Design Plaza 동대문",
    ],
)
def test_a_long_place_name_is_wrapped_whole_into_its_stamp(name):
    visits = tuple(visit(f"{name}", day) for day in (3, 4))  # two visits: a rectangular stamp
    texts = draw_cover(request(visits=visits)).texts
    name_lines = texts[3 : texts.index("SEOUL")]
    assert len(name_lines) == 2
    assert name in {"".join(name_lines), " ".join(name_lines)}
    assert "…" not in "".join(name_lines)
