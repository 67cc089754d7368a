import pytest
from tool import days_between_dates


def test_days_in_a_leap_year():
    assert days_between_dates("2024-01-01", "2025-01-01") == 366


def test_same_day_is_zero():
    assert days_between_dates("2023-05-17", "2023-05-17") == 0


def test_end_before_start_is_negative():
    assert days_between_dates("2023-03-10", "2023-03-01") == -9


def test_invalid_date_is_refused():
    with pytest.raises(ValueError):
        days_between_dates("2023-02-30", "2023-03-01")
