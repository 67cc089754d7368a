import math

from tool import celsius_to_fahrenheit


def test_freezing_and_boiling_points():
    assert celsius_to_fahrenheit(0) == 32.0
    assert celsius_to_fahrenheit(100) == 212.0


def test_minus_forty_is_the_same_in_both_scales():
    assert celsius_to_fahrenheit(-40) == -40.0


def test_body_temperature():
    assert math.isclose(celsius_to_fahrenheit(37), 98.6)
