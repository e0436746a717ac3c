import pytest

from regspace.errors import UsageProblem
from regspace.units import Range, format_quantity, parse_quantity, parse_range


@pytest.mark.parametrize(
    "text,value",
    [
        ("360M", 360_000_000),
        ("0.36G", 360_000_000),
        ("2.5K", 2500),
        ("400MF", 400_000_000),
        ("1.6gf", 1_600_000_000),
        ("17", 17),
        ("1e6", 10**6),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text,expected",
    [
        ("360M:400M", Range(360_000_000, 400_000_000)),
        ("0.36G:0.4G", Range(360_000_000, 400_000_000)),
        (":2M", Range(None, 2_000_000)),
        ("2M:", Range(2_000_000, None)),
        (":", Range()),
    ],
)
def test_ranges(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("bad", ["400M", "400M:300M", "abc:1M", "1M:2M:3M", "-1M:2M", "0:1M", "1X:2M", ""])
def test_bad_ranges(bad):
    with pytest.raises(UsageProblem):
        parse_range(bad)


def test_format():
    assert format_quantity(399_999_999) == "400M"
    assert format_quantity(1_602_850_792) == "1.6G"
