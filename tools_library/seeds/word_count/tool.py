def word_count(text: str) -> int:
    """Count the words in a text: runs of characters separated by whitespace."""
    return len(text.split())
