def compound_interest(principal: float, annual_rate_percent: float, years: float, times_per_year: int = 1) -> float:
    """Return the final amount of `principal` after compound interest, rounded to cents."""
    if times_per_year < 1:
        raise ValueError("times_per_year must be at least 1")
    rate = annual_rate_percent / 100.0 / times_per_year
    return round(principal * (1.0 + rate) ** (times_per_year * years), 2)
