"""The kinds of value a setting takes: each reads the text it accepts, refuses the rest, and
writes a value back the way it reads it."""

from __future__ import annotations

import pytest

from fcgikit.server.settings.kinds import FLAG, integer, octal, seconds, size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[(word, True) for word in ("1", "true", "YES", " on ")],
        *[(word, False) for word in ("0", "False", "no", "off")],
    ],
)
def test_flags_read_the_usual_words(text: str, value: bool) -> None:
    assert FLAG.parse(text) is value


@pytest.mark.parametrize("text", ["", "2", "maybe", "enabled"])
def test_flags_refuse_other_words(text: str) -> None:
    with pytest.raises(ValueError):
        FLAG.parse(text)


def test_kinds_write_values_the_way_they_read_them() -> None:
    assert octal().parse(octal().show(0o007)) == 0o007 and octal().show(0o660) == "660"
    never = seconds(zero_means_never=True)
    assert never.parse("0") is None and never.show(None) == 0 and never.writes_none
    assert integer(minimum=1).check(0) == "must be at least 1, not 0"
    assert integer().check(3) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("65536", 65536, id="bytes"),
        pytest.param("512K", 512 << 10, id="K"),
        pytest.param(" 64m ", 64 << 20, id="lower-case, spaced"),
        pytest.param("64MiB", 64 << 20, id="MiB"),
        pytest.param("1G", 1 << 30, id="G"),
    ],
)
def test_sizes_read_with_or_without_a_unit_and_write_back_the_same(text: str, value: int) -> None:
    kind = size()
    assert kind.parse(text) == value
    assert kind.parse(str(kind.show(value))) == value


@pytest.mark.parametrize("text", ["", "M", "64T", "lots", "-1K"])
def test_sizes_refuse_other_text(text: str) -> None:
    with pytest.raises(ValueError):
        size().parse(text)
