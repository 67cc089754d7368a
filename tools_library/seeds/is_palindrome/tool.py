def is_palindrome(text: str) -> bool:
    """Tell whether a text reads the same backwards, ignoring case, spaces and punctuation."""
    letters = [c.lower() for c in text if c.isalnum()]
    return letters == letters[::-1]
