from tool import word_count


def test_simple_sentence():
    assert word_count("the quick brown fox") == 4


def test_empty_and_blank_text():
    assert word_count("") == 0
    assert word_count("   \n\t ") == 0


def test_irregular_whitespace_and_punctuation():
    assert word_count("  hello,   world!\nnew line ") == 4
