"""How one environment variable's text becomes a value, or a ``SettingsError`` naming it."""

from __future__ import annotations

from collections.abc import Callable

# Reads one variable: its stripped value, or the default when it is unset or blank.
Getter = Callable[..., str | None]


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


def http_url(value: str | None, name: str) -> str | None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise SettingsError(f"{name}={value!r} is not an http(s) URL")
    return value


def choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value.lower() not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
    return value.lower()


def month(value: str, name: str) -> str:
    from passport_pipeline.domain.months import InvalidMonthError, Month

    try:
        parsed = Month.parse(value)
    except InvalidMonthError as error:
        raise SettingsError(f"{name}: {error}") from None
    return parsed.key


def integer(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a whole number") from None
    if number < 1:
        raise SettingsError(f"{name} must be at least 1, not {number}")
    return number


def number(value: str, name: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None
    if parsed < 0:
        raise SettingsError(f"{name} cannot be negative")
    return parsed


def number_or_none(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    return number(value.strip(), name)


def positive_or_none(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    parsed = number(value, name)
    if parsed <= 0:
        raise SettingsError(f"{name} must be a positive number of requests a minute, not {value}")
    return parsed


def seconds(value: str, name: str) -> float:
    parsed = number(value, name)
    if parsed == 0:
        raise SettingsError(f"{name} must be more than 0 seconds")
    return parsed


def flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={value!r} is not true or false")
