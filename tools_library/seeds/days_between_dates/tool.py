from datetime import date


def days_between_dates(start: str, end: str) -> int:
    """Return the number of days from `start` to `end`, both ISO dates (YYYY-MM-DD); negative if end is earlier."""
    return (date.fromisoformat(end) - date.fromisoformat(start)).days
