"""The local renderer draws a real, deterministic PNG cover from a month's visits."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import CoverRequest, Visit
from passport_pipeline.render.cover import MAX_STAMPS, choose_stamps, render_cover

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
