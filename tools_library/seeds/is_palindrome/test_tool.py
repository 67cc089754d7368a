from tool import is_palindrome


def test_simple_palindromes():
    assert is_palindrome("racecar") is True
    assert is_palindrome("level") is True


def test_ignores_case_spaces_and_punctuation():
    assert is_palindrome("A man, a plan, a canal: Panama") is True


def test_not_a_palindrome():
    assert is_palindrome("hello") is False


def test_empty_text_is_a_palindrome():
    assert is_palindrome("") is True
