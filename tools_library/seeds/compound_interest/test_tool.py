import pytest
from tool import compound_interest


def test_yearly_compounding():
    assert compound_interest(1000, 5, 2) == 1102.5


def test_monthly_compounding():
    assert compound_interest(1000, 12, 1, 12) == 1126.83


def test_zero_rate_keeps_principal():
    assert compound_interest(500, 0, 10) == 500.0


def test_invalid_frequency_is_refused():
    with pytest.raises(ValueError):
        compound_interest(100, 5, 1, 0)
