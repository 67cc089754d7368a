import math

from tool import calculate_percentage


def test_fifteen_percent_of_three_hundred():
    assert calculate_percentage(300, 15) == 45.0


def test_returns_float():
    assert isinstance(calculate_percentage(10, 50), float)


def test_zero_and_hundred_percent():
    assert calculate_percentage(80, 0) == 0.0
    assert calculate_percentage(80, 100) == 80.0


def test_fractional_and_negative():
    assert math.isclose(calculate_percentage(200, 12.5), 25.0)
    assert math.isclose(calculate_percentage(-50, 10), -5.0)
