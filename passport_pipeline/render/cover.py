"""The local image model: draws a passport cover from a month's visits with Pillow.

The cover has a deep background chosen from the title and month, a gold border, the word
PASSPORT, the title, the month, the holder's nickname, and one ink "stamp" per place
visited that month (the most visited first; ``+N more`` when they do not all fit).
Everything is derived from the request, so the same request gives the same PNG bytes.
Text is drawn by render/text.py, in Latin and Korean fonts alike.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

from PIL import Image, ImageDraw

from passport_pipeline.domain.months import SEOUL
from passport_pipeline.domain.prompt import passport_month_name, sanitize_user_text
from passport_pipeline.domain.records import CoverRequest, Visit
from passport_pipeline.render import text as typeset

MAX_STAMPS = 12
SCALE = 2  # drawn at twice the size and scaled down, for smooth edges and text
BACKGROUNDS = [(18, 38, 74), (92, 20, 36), (16, 70, 52), (12, 64, 76), (60, 28, 84),
               (34, 40, 52), (96, 44, 18), (22, 30, 96)]  # fmt: skip
INKS = [(255, 138, 101), (129, 212, 180), (128, 196, 255), (255, 202, 88), (206, 160, 255),
        (255, 140, 180), (170, 230, 110), (120, 230, 235)]  # fmt: skip
GOLD, PALE_GOLD = (222, 188, 112), (240, 222, 178)


@dataclass(frozen=True)
class PlaceStamp:
    """One place as it appears on the cover."""

    name: str
    city: str
    first_visit_label: str  # e.g. "14 OCT", the Seoul calendar day of the first visit
    visits: int


def choose_stamps(visits: tuple[Visit, ...] | list[Visit], limit: int = MAX_STAMPS):
    """The places to stamp, most visited first, and how many are left out.

    Returns ``(stamps, hidden)``; when places do not all fit, the last slot is kept for a
    ``+hidden more`` stamp, so ``len(stamps) + (hidden > 0) <= limit``.
    """
    by_place: OrderedDict[tuple[str, str], list[Visit]] = OrderedDict()
    for visit in sorted(visits, key=lambda v: v.visited_at):
        by_place.setdefault((visit.place_name, visit.city), []).append(visit)
    ranked = sorted(by_place.items(), key=lambda item: -len(item[1]))  # stable: first visit
    shown = ranked if len(ranked) <= limit else ranked[: limit - 1]
    stamps = [
        PlaceStamp(
            name=name,
            city=city,
            first_visit_label=group[0].visited_at.astimezone(SEOUL).strftime("%d %b").upper(),
            visits=len(group),
        )
        for (name, city), group in shown
    ]
    return stamps, len(ranked) - len(shown)


@dataclass(frozen=True)
class DrawnCover:
    """A cover as PNG bytes, and every line of text drawn on it, in drawing order."""

    png: bytes
    texts: tuple[str, ...]


def render_cover(request: CoverRequest, width: int = 768, height: int = 1024) -> bytes:
    """Draw the cover for ``request`` and return it as PNG bytes."""
    return draw_cover(request, width, height).png


def draw_cover(request: CoverRequest, width: int = 768, height: int = 1024) -> DrawnCover:
    """Draw the cover for ``request``; the texts say what it shows, for a test to read."""
    texts: list[str] = []
    seed = hashlib.sha256(f"{request.title}\n{request.month.key}".encode()).digest()
    rng = random.Random(seed + repr(sorted(str(v) for v in request.visits)).encode())
    background = BACKGROUNDS[seed[0] % len(BACKGROUNDS)]
    w, h = width * SCALE, height * SCALE
    image = Image.new("RGB", (w, h), background)
    _draw_guilloche(image, background, seed[1])
    draw = ImageDraw.Draw(image)
    _draw_border(draw, w, h)
    s = h / 1024  # every size below is for a 1024-high cover
    centered = partial(_centered, draw, texts)
    centered(" ".join("PASSPORT"), w / 2, 70 * s, 46 * s, GOLD)
    _draw_globe(draw, w / 2, 168 * s, 46 * s)
    # Line breaks become spaces first: sanitising drops control characters, gluing words.
    title = typeset.printable(sanitize_user_text(" ".join(request.title.split())))
    centered(title or "My Passport", w / 2, 246 * s, 44 * s, PALE_GOLD, max_width=w * 0.84)
    month = passport_month_name(request.month).upper()
    centered(" ".join(month.split(" ")), w / 2, 304 * s, 24 * s, GOLD)
    _draw_divider(draw, w / 2, 348 * s, w * 0.3)
    stamps, hidden = choose_stamps(request.visits)
    _draw_stamps(image, texts, stamps, hidden, (w * 0.07, 372 * s, w * 0.93, 930 * s), rng)
    nickname = typeset.printable(sanitize_user_text(request.nickname, limit=28)) or "Traveller"
    totals = f"{_plural(len(request.visits), 'VISIT')}, {_plural(len(stamps) + hidden, 'PLACE')}"
    footer = f"HOLDER  {nickname}   ·   {totals}"
    centered(footer, w / 2, 962 * s, 17 * s, PALE_GOLD, max_width=w * 0.8)
    out = io.BytesIO()
    image.resize((width, height), Image.Resampling.LANCZOS).save(out, format="PNG")
    return DrawnCover(out.getvalue(), tuple(texts))


def _centered(draw, texts: list[str], text, x, y, size, fill, max_width=None, min_size=None):
    """One line centred on (x, y), shrunk (then cut with …) to fit ``max_width``."""
    text, size = typeset.fit(text, size, max_width or 1e9, min_size or size * 0.55)
    typeset.draw_line(draw, text, (x, y), size, fill)
    texts.append(text)


def _draw_guilloche(image: Image.Image, background, phase: int) -> None:
    """Fine wavy security-print lines, a shade lighter than the background."""
    draw = ImageDraw.Draw(image)
    w, h = image.size
    shade = tuple(min(255, c + 22) for c in background)
    for i in range(-4, 44):
        wave = 18 * SCALE, 37 * SCALE, i * 0.6 + phase  # amplitude, wavelength, phase
        points = [
            (x, i * h / 40 + wave[0] * math.sin(x / wave[1] + wave[2])) for x in range(0, w + 8, 8)
        ]
        draw.line(points, fill=shade, width=SCALE)


def _draw_border(draw: ImageDraw.ImageDraw, w: int, h: int) -> None:
    outer, inner, r = 24 * SCALE, 36 * SCALE, 10 * SCALE
    draw.rounded_rectangle((outer, outer, w - outer, h - outer), r, outline=GOLD, width=3 * SCALE)
    draw.rounded_rectangle((inner, inner, w - inner, h - inner), r, outline=GOLD, width=SCALE)
    for cx in (inner, w - inner):
        for cy in (inner, h - inner):
            d = 9 * SCALE  # a small diamond on each inner corner
            draw.polygon([(cx, cy - d), (cx + d, cy), (cx, cy + d), (cx - d, cy)], fill=GOLD)


def _draw_globe(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    line = max(2, int(r / 16))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=GOLD, width=line)
    for k in (0.35, 0.7):  # meridians
        draw.ellipse((cx - r * k, cy - r, cx + r * k, cy + r), outline=GOLD, width=line)
    draw.line((cx, cy - r, cx, cy + r), fill=GOLD, width=line)
    for k in (-0.5, 0, 0.5):  # parallels
        half = r * math.sqrt(1 - k * k)
        draw.line((cx - half, cy + k * r, cx + half, cy + k * r), fill=GOLD, width=line)


def _draw_divider(draw: ImageDraw.ImageDraw, cx: float, y: float, half: float) -> None:
    d = 6 * SCALE
    draw.line((cx - half, y, cx - 2 * d, y), fill=GOLD, width=SCALE)
    draw.line((cx + 2 * d, y, cx + half, y), fill=GOLD, width=SCALE)
    draw.polygon([(cx, y - d), (cx + d, y), (cx, y + d), (cx - d, y)], fill=GOLD)


def _draw_stamps(image, texts, stamps: list[PlaceStamp], hidden: int, box, rng: random.Random):
    """Lay stamps on a grid inside ``box``, each turned a little, none leaving its cell."""
    count = len(stamps) + (hidden > 0)
    if not count:
        return
    cols = 1 if count == 1 else 2 if count <= 4 else 3
    rows = math.ceil(count / cols)
    left, top, right, bottom = box
    cell_w = (right - left) / cols
    cell_h = min((bottom - top) / rows, cell_w * 0.9)
    top += ((bottom - top) - cell_h * rows) / 2  # centre a short grid vertically
    inks = rng.sample(INKS, len(INKS))
    for index in range(count):
        row, col = divmod(index, cols)
        in_row = min(cols, count - row * cols)  # centre an unfilled last row
        x0 = left + (right - left - in_row * cell_w) / 2 + col * cell_w
        ink = inks[index % len(inks)]
        stamp = stamps[index] if index < len(stamps) else hidden
        tile = _stamp_tile(texts, stamp, ink, rng, cell_w * 0.92, cell_h * 0.92)
        slack_x, slack_y = max(0, cell_w - tile.width), max(0, cell_h - tile.height)
        x = x0 + slack_x * rng.uniform(0.3, 0.7)
        y = top + row * cell_h + slack_y * rng.uniform(0.3, 0.7)
        image.paste(tile, (int(x), int(y)), tile)


def _stamp_tile(texts, stamp: PlaceStamp | int, ink, rng, max_w: float, max_h: float):
    """One stamp on a transparent tile, rotated; an int draws the ``+N more`` stamp."""
    angle = rng.uniform(-9, 9)
    name = "" if isinstance(stamp, int) else sanitize_user_text(stamp.name, limit=60)
    name = typeset.printable(name)
    # Only short, single-visit places go in a circle: more text would need a tiny font.
    round_shape = isinstance(stamp, int) or (
        _columns(name) <= 14 and stamp.visits == 1 and rng.random() < 0.5
    )
    sin, cos = abs(math.sin(math.radians(angle))), abs(math.cos(math.radians(angle)))
    if round_shape:
        sw = sh = min(max_w, max_h, 260 * SCALE * (cos + sin)) / (cos + sin)
    else:  # the largest ~1.6:1 rectangle whose rotated bounds still fit the cell
        ratio = min(1.8, max(1.3, max_w / max_h))
        sh = min(max_w / (ratio * cos + sin), max_h / (cos + ratio * sin), 200 * SCALE)
        sw = sh * ratio
    sw, sh = int(sw), int(sh)
    tile = Image.new("RGBA", (sw, sh))
    draw = ImageDraw.Draw(tile)
    line = max(2, sh // 40)
    inset = line * (3 if round_shape else 4)
    shape = draw.ellipse if round_shape else partial(draw.rounded_rectangle, radius=sh // 8)
    shape((0, 0, sw - 1, sh - 1), fill=(*ink, 38), outline=ink, width=line * 2)
    inner = draw.ellipse if round_shape else partial(draw.rounded_rectangle, radius=sh // 12)
    inner((inset, inset, sw - inset, sh - inset), outline=ink, width=line)
    if isinstance(stamp, int):
        lines = [(f"+{stamp}", 0.3), ("MORE", 0.13), ("PLACES", 0.1)]
    else:
        when = stamp.first_visit_label + (
            f" · {_plural(stamp.visits, 'VISIT')}" if stamp.visits > 1 else ""
        )
        name_lines, name_px = typeset.wrap_fit(  # a circle is narrower at the name's line
            name or "A place",
            sh * (0.15 if round_shape else 0.17),
            sw * (0.7 if round_shape else 0.8),
            sh * 0.1,
        )
        name_size = name_px / sh
        lines = [
            *[(part, name_size) for part in name_lines],
            ((typeset.printable(stamp.city) or "-").upper(), 0.11),
            (when, 0.1),
        ]
    heights = [sh * size * 1.2 for _, size in lines]
    y = (sh - sum(heights)) / 2
    radius = sw / 2 - inset - line * 2
    for (text, size), line_h in zip(lines, heights, strict=True):
        max_width = sw - 2 * (inset + line * 3)
        if round_shape:  # the circle's width at this line's edge farthest from the centre
            dy = min(radius, max(abs(y - sh / 2), abs(y + line_h - sh / 2)) * 0.9)
            max_width = 2 * math.sqrt(radius**2 - dy**2) * 0.92
        _centered(draw, texts, text, sw / 2, y + line_h / 2, sh * size, ink, max_width=max_width)
        y += line_h
    return tile.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def _columns(text: str) -> int:
    """How wide ``text`` is in columns: a Hangul syllable takes two, as a Latin letter one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 'S'}"
