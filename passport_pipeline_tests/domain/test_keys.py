import hashlib
import re

import pytest

from passport_pipeline.domain.keys import (
    WeakSecretError,
    cover_key,
    cover_key_stem,
    cover_token,
    cover_url_patterns,
)
from passport_pipeline.domain.months import Month

SECRET = "s3cret-for-tests-0123456789"
OCTOBER = Month(2026, 10)


def test_same_user_and_month_always_map_to_the_same_stem():
    assert cover_key_stem(SECRET, 42, OCTOBER) == cover_key_stem(SECRET, 42, OCTOBER)


def test_stem_shape_is_covers_month_token():
    stem = cover_key_stem(SECRET, 42, OCTOBER)
    assert re.fullmatch(r"covers/2026-10/[0-9a-f]{32}", stem)
    assert cover_key(stem, "png") == stem + ".png"


@pytest.mark.parametrize(
    ("other_user", "other_month", "other_secret"),
    [(43, OCTOBER, SECRET), (42, Month(2026, 9), SECRET), (42, OCTOBER, SECRET + "x")],
)
def test_token_changes_with_user_month_and_secret(other_user, other_month, other_secret):
    assert cover_token(SECRET, 42, OCTOBER) != cover_token(other_secret, other_user, other_month)


def test_key_is_not_a_plain_hash_of_the_user_id():
    tokens = {cover_token(SECRET, user_id, OCTOBER) for user_id in range(1, 1001)}
    assert len(tokens) == 1000
    for user_id in (1, 42):
        for text in (str(user_id), f"{user_id}:2026-10", f"{user_id}2026-10"):
            for algorithm in ("md5", "sha1", "sha256"):
                digest = hashlib.new(algorithm, text.encode()).hexdigest()
                assert cover_token(SECRET, user_id, OCTOBER) not in digest


def test_prefix_goes_before_covers():
    assert cover_key_stem(SECRET, 1, OCTOBER, prefix="/prod/").startswith("prod/covers/2026-10/")


def test_short_secret_is_refused():
    with pytest.raises(WeakSecretError, match="at least 16"):
        cover_token("short", 1, OCTOBER)


def like(pattern: str, text: str) -> bool:
    """SQL LIKE with % only, as the patterns use it."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("%"))), text) is not None


@pytest.mark.parametrize(
    ("url", "matches"),
    [
        ("file:///home/images/covers/2026-11/" + "a" * 32 + ".png", True),
        ("s3://bucket/prod/covers/2026-12/" + "a" * 32 + ".webp", True),
        ("https://cdn.example/covers/2026-11/" + "a" * 32 + ".jpg", True),
        ("https://cdn.example/covers/2026-10/" + "a" * 32 + ".jpg", False),
        ("s3://mycovers/2026-11/x.png", False),  # a bucket ending in "covers" is no month folder
        ("https://app.example/default.png", False),
    ],
)
def test_url_patterns_match_covers_of_the_given_months_in_any_store(url, matches):
    patterns = cover_url_patterns([Month(2026, 11), Month(2026, 12)])
    assert any(like(p, url) for p in patterns) is matches
    stem = cover_key_stem(SECRET, 42, Month(2026, 11), prefix="prod")
    assert any(like(p, f"s3://bucket/{stem}.png") for p in patterns)
