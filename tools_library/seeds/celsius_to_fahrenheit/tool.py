def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return float(celsius) * 9.0 / 5.0 + 32.0
