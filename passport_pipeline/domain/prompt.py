"""The one place the image prompt is built."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import Passport, Visit

MAX_USER_TEXT = 40
MAX_PLACES_NAMED = 8
MAX_CITIES_NAMED = 4
_SPACES = re.compile(r"\s+")
# Characters that could be read as markup or instructions by the model.
_STRIP = re.compile(r"[<>{}\[\]`\\|#*_~^$]")


def sanitize_user_text(text: str | None, limit: int = MAX_USER_TEXT) -> str:
    """Make text a user typed safe to quote inside a prompt.

    Drops control and format characters and markup-like symbols, folds white space,
    removes quote marks (so the text cannot close the quotation around it) and caps
    the length on a character boundary.
    """
    if not text:
        return ""
    normalized = _SPACES.sub(" ", unicodedata.normalize("NFKC", text))
    kept = "".join(ch for ch in normalized if unicodedata.category(ch)[0] != "C")
    kept = _STRIP.sub(" ", kept).replace('"', "'")
    kept = _SPACES.sub(" ", kept).strip()
    if len(kept) > limit:
        kept = kept[: limit - 1].rstrip() + "…"
    return kept


def summarize_visits(visits: list[Visit] | tuple[Visit, ...]) -> str:
    """Plain-language summary: the most visited places first, then the cities and countries."""
    place_counts = Counter(sanitize_user_text(v.place_name) for v in visits)
    named = [name for name, _ in place_counts.most_common(MAX_PLACES_NAMED) if name]
    categories = Counter(sanitize_user_text(v.category) for v in visits)
    parts = [f"{len(visits)} visit{'s' if len(visits) != 1 else ''}"]
    if named:
        more = len(place_counts) - len(named)
        parts.append("places: " + ", ".join(named) + (f" and {more} more" if more > 0 else ""))
    cities = cities_by_country(visits)
    if cities:
        parts.append(f"cities: {cities}")
    parts.append("mostly " + ", ".join(cat for cat, _ in categories.most_common(3)))
    return "; ".join(parts)


def cities_by_country(visits: list[Visit] | tuple[Visit, ...]) -> str:
    """The most visited cities, each country named once after its cities.

    "서울, 부산 (South Korea), 도쿄 (Japan)": cities by visits, a country's group placed where
    its first city ranks. The country is written as the app stores it.
    """
    counts = Counter((sanitize_user_text(v.city), sanitize_user_text(v.country)) for v in visits)
    groups: dict[str, list[str]] = {}
    for (city, country), _ in counts.most_common(MAX_CITIES_NAMED):
        groups.setdefault(country, [])
        if city:
            groups[country].append(city)
    named = []
    for country, cities in groups.items():
        if cities and country:
            named.append(f"{', '.join(cities)} ({country})")
        elif cities or country:
            named.append(", ".join(cities) or country)
    return ", ".join(named)


def build_prompt(passport: Passport, month: Month, visits: list[Visit] | tuple[Visit, ...]) -> str:
    if not visits:
        raise ValueError("a cover prompt needs at least one visit")
    title = sanitize_user_text(passport.title) or "My Passport"
    month_name = passport_month_name(month)
    return (
        "Design a portrait travel-passport cover illustration, 3:4, no photographs of people, "
        "no real logos, no text other than the title. "
        f'Title on the cover: "{title}". '
        f"It celebrates the traveller's {month_name}: {summarize_visits(visits)}. "
        "Show these places as stylised stamps and landmarks in a warm, hand-printed style."
    )


def passport_month_name(month: Month) -> str:
    return month.seoul_start().strftime("%B %Y")
