"""Text on a cover: the fonts, which one draws each character, and fitting text to a width.

The fonts come from the project's dependencies (README, Fonts) and form a fallback chain:
Noto Sans draws Latin with every accent, Greek and Cyrillic; Noto Sans KR draws Hangul,
Hanja and kana. Each character is drawn by the first font that has it, so a line that mixes
scripts gets the right glyph for each. A character no font has (an emoji, a flag) is
replaced by its unaccented letter when it has one, and dropped otherwise: never a box.
"""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache

import fontpkg
import pylopdf_fonts_ko
from PIL import Image, ImageDraw, ImageFont


@cache
def font_files() -> tuple[str, ...]:
    """The fallback chain, most preferred first."""
    return str(fontpkg.path("Noto Sans")), str(pylopdf_fonts_ko.sans_path())


@lru_cache(maxsize=256)
def font(index: int, size: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: with Raqm, Pillow's wheels shape text only where the system happens to
    # have libfribidi, and the same cover would then differ between two machines.
    return ImageFont.truetype(font_files()[index], size, layout_engine=ImageFont.Layout.BASIC)


@cache
def _missing_glyph_ink(index: int) -> bytes:
    return _ink(index, "\ue000")  # a private-use character: no font of the chain has it


def _ink(index: int, text: str) -> bytes:
    canvas = Image.new("L", (64, 64))
    ImageDraw.Draw(canvas).text((8, 8), text, font=font(index, 32), fill=255)
    return canvas.tobytes()


@lru_cache(maxsize=16384)
def font_for(char: str) -> int | None:
    """The index of the first font that draws ``char`` as itself, or None."""
    if char == " ":
        return 0
    if unicodedata.category(char)[0] in "CZ":  # controls, format characters, odd spaces
        return None
    for index in range(len(font_files())):
        # Pillow does not expose a font's character map; a character the font lacks is
        # drawn as its missing-glyph box, so compare with that.
        if _ink(index, char) != _missing_glyph_ink(index):
            return index
    return None


def printable(text: str) -> str:
    """``text`` with only characters some font draws, white space folded."""
    kept = []
    for char in unicodedata.normalize("NFC", text):
        if char.isspace():
            kept.append(" ")
        elif font_for(char) is not None:
            kept.append(char)
        else:  # a letter no font has may still be drawn without its accent
            folded = unicodedata.normalize("NFKD", char)
            kept += [c for c in folded if not unicodedata.combining(c) and font_for(c) is not None]
    return " ".join("".join(kept).split())


def runs(text: str) -> list[tuple[int, str]]:
    """``text`` cut into pieces that one font draws each: ``[(font index, piece), ...]``."""
    pieces: list[tuple[int, str]] = []
    for char in text:
        index = font_for(char)
        if index is None:
            continue
        if pieces and (pieces[-1][0] == index or char == " "):
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + char)
        else:
            pieces.append((index, char))
    return pieces


def width(text: str, size: int) -> float:
    return sum(font(index, size).getlength(piece) for index, piece in runs(text))


def fit(text: str, size: float, max_width: float, min_size: float) -> tuple[str, int]:
    """The largest size (down to ``min_size``) at which ``text`` fits; cut with … below that."""
    size = int(size)
    while size > min_size and width(text, size) > max_width:
        size -= 2
    size = max(int(min_size), size)
    while len(text) > 1 and width(text, size) > max_width:
        text = text[:-2].rstrip() + "…"
    return text, size


def draw_line(draw: ImageDraw.ImageDraw, text: str, center: tuple[float, float], size: int, fill):
    """Draw one line of text centred on ``center``, each piece in its own font."""
    ascent, descent = font(0, size).getmetrics()
    x = center[0] - width(text, size) / 2
    baseline = center[1] + (ascent - descent) / 2  # as Pillow's "mm" anchor for one font
    for index, piece in runs(text):
        draw.text((x, baseline), piece, font=font(index, size), fill=fill, anchor="ls")
        x += font(index, size).getlength(piece)


def _may_break_between(before: str, after: str) -> bool:
    # Korean breaks at spaces first, but a word wider than the line may break between any
    # two syllables (or Hanja, kana); a Latin word is never cut.
    return _is_cjk(before) and _is_cjk(after)


def _is_cjk(char: str) -> bool:
    return unicodedata.category(char) == "Lo" and unicodedata.east_asian_width(char) in "WF"


def wrap_fit(
    text: str, size: float, max_width: float, min_size: float, max_lines: int = 2
) -> tuple[list[str], int]:
    """The largest size (down to ``min_size``) at which ``text`` wraps into lines that fit.

    Words are kept whole (Korean's keep-all) as long as some size allows it; only a text
    that fits no size that way is broken inside a word, at the largest size that fits.
    """
    sizes = range(int(size), int(min_size) - 1, -2)
    for keep_all in (True, False):
        for each in sizes:
            lines = wrap(text, each, max_width, max_lines, keep_all=keep_all)
            if all(width(line, each) <= max_width for line in lines):
                return lines, each
    return wrap(text, sizes[-1], max_width, max_lines), sizes[-1]


def wrap(
    text: str, size: int, max_width: float, max_lines: int = 2, keep_all: bool = False
) -> list[str]:
    """At most ``max_lines`` lines; the last holds the rest (the caller fits it).

    With ``keep_all`` lines break only at spaces.
    """
    text = " ".join(text.split())
    lines: list[str] = []
    start = 0
    while len(lines) < max_lines - 1 and width(text[start:], size) > max_width:
        cut = _cut(text, start, size, max_width, keep_all)
        if cut is None:
            break
        lines.append(text[start:cut].rstrip())
        start = cut + (text[cut] == " ")
    return [*lines, text[start:]] if text[start:] else lines


def _cut(text: str, start: int, size: int, max_width: float, keep_all: bool) -> int | None:
    """Where the line starting at ``start`` ends: the last space that fits, unless the next
    word would not fit on a line of its own; then the last break inside a word that fits.
    """
    fits = [p for p in range(start + 1, len(text)) if width(text[start:p], size) <= max_width]
    at_space = [p for p in fits if text[p] == " "]
    in_word = [] if keep_all else [p for p in fits if _may_break_between(text[p - 1], text[p])]
    if at_space:
        next_word = text[at_space[-1] + 1 :].split(" ")[0]
        if width(next_word, size) <= max_width or not in_word or in_word[-1] < at_space[-1]:
            return at_space[-1]
    if in_word:
        return in_word[-1]
    # Even the first word is too wide: it gets a line of its own, which the caller shrinks.
    return text.find(" ", start + 1) if " " in text[start + 1 :] else None
