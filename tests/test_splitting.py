"""Splitting answers to Discord's 2000-character limit."""

from __future__ import annotations

from updater.splitting import split_message


def test_short_text_is_one_part() -> None:
    assert split_message("  hello  ") == ["hello"]
    assert split_message("   ") == []


def test_long_prose_splits_at_line_and_word_boundaries_and_loses_nothing() -> None:
    text = "\n".join(f"Line {i}: " + "word " * 30 for i in range(60))
    parts = split_message(text)
    assert len(parts) > 1
    assert all(len(p) <= 2000 for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(text.split())
    assert all(p.endswith("word") for p in parts)  # never inside a word


def test_text_without_spaces_is_cut_hard() -> None:
    parts = split_message("x" * 4500)
    assert [len(p) for p in parts][:2] == [1996, 1996] and "".join(parts) == "x" * 4500


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "\n".join(f"print({i})  # a comment that takes some room" for i in range(120))
    parts = split_message(f"Here you go:\n```python\n{code}\n```\nDone.")
    assert len(parts) >= 2 and all(len(p) <= 2000 for p in parts)
    assert parts[0].endswith("```")
    assert parts[1].startswith("```python\n")
    for part in parts:
        assert part.count("```") % 2 == 0  # every part renders its code block closed


def test_unterminated_code_block_is_kept() -> None:
    parts = split_message("```\n" + "a = 1\n" * 500)
    assert all(len(p) <= 2000 for p in parts)
    assert parts[1].startswith("```\n")
