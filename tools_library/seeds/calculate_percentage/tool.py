def calculate_percentage(value: float, percent: float) -> float:
    """Return `percent` percent of `value`, e.g. 15 percent of 300 is 45.0."""
    return float(value) * float(percent) / 100.0
