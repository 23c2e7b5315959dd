"""Code-block parsing (taorl.tools.parse) and observation rendering (taorl.tools.observation)."""

import pytest

from taorl.tools import ToolResult, complete_block_end, first_code_block, format_observation

FENCE = "`" * 3


def block(text):
    b = first_code_block(text)
    return None if b is None else b.code


def test_plain_python_block_code_and_span():
    text = f"Let me compute.\n{FENCE}python\nprint(17*23)\n{FENCE}\nmore text"
    b = first_code_block(text)
    assert b.code == "print(17*23)"
    assert b.lang == "python"
    assert b.start == len("Let me compute.\n")
    assert text[b.start:b.end] == f"{FENCE}python\nprint(17*23)\n{FENCE}"
    assert complete_block_end(text) == b.end == len(text) - len("\nmore text")


@pytest.mark.parametrize("tag", ["", "py", "python", "Python", "PY", "python3"])
def test_python_tags_and_no_tag(tag):
    assert block(f"{FENCE}{tag}\nx = 1\nprint(x)\n{FENCE}") == "x = 1\nprint(x)"


def test_other_language_blocks_are_skipped_not_run():
    text = (f"{FENCE}text\nprint('not me')\n{FENCE}\n"
            f"{FENCE}bash\nls\n{FENCE}\n"
            f"{FENCE}python\nprint('me')\n{FENCE}\n")
    b = first_code_block(text)
    assert b.code == "print('me')"
    assert text[b.start:].startswith(f"{FENCE}python")


def test_nothing_inside_another_language_block_opens_a_block():
    text = f"{FENCE}output\n{FENCE}python\n"  # the python fence is a line of the output block...
    assert first_code_block(text) is None
    text2 = text + f"print(1)\n{FENCE}\n"  # ...whose closing fence is this one
    assert first_code_block(text2) is None


def test_backticks_inside_strings_do_not_close():
    code = f's = "{FENCE}"\nprint(s + \'{FENCE}python\')\nt = """\n  x\n"""'
    text = f"{FENCE}python\n{code}\n{FENCE}\nafter"
    assert block(text) == code


def test_unterminated_block_is_none():
    assert first_code_block(f"Here:\n{FENCE}python\nprint(1)\n") is None
    assert first_code_block(f"Here:\n{FENCE}python\nprint(1)\n``") is None
    assert complete_block_end(f"{FENCE}python\nprint(1)\n{FENCE}py") is None
    assert first_code_block(f"{FENCE}python") is None  # the opening fence needs its line break
    assert first_code_block("no code at all") is None


def test_closing_fence_at_end_of_text_is_complete():
    text = f"{FENCE}python\nprint(1)\n{FENCE}"
    assert complete_block_end(text) == len(text)


def test_only_the_first_block():
    text = f"{FENCE}python\na = 1\n{FENCE}\n{FENCE}python\nb = 2\n{FENCE}"
    assert block(text) == "a = 1"
    assert complete_block_end(text) == text.index(FENCE, 5) + 3


def test_indented_fence_is_dedented():
    text = f"1. step\n    {FENCE}python\n    for i in range(2):\n        print(i)\n    {FENCE}\n"
    assert block(text) == "for i in range(2):\n    print(i)"


def test_crlf_line_ends():
    text = f"Compute:\r\n{FENCE}python\r\nx = 2\r\nprint(x)\r\n{FENCE}\r\nDone"
    b = first_code_block(text)
    assert b.code == "x = 2\nprint(x)"
    assert text[b.end - 3:b.end] == FENCE and text[b.end:] == "\r\nDone"


def test_inline_opening_fence_after_prose():
    assert block(f"Let me compute: {FENCE}python\nprint(2)\n{FENCE}") == "print(2)"
    # bare backticks ending a line of prose are not a fence
    assert first_code_block(f"a literal {FENCE}\nprint(2)\n{FENCE}") is None


def test_longer_fences_need_a_long_enough_close():
    text = f"````python\nprint('{FENCE}')\n{FENCE}\nx = 1\n````\n"
    assert block(text) == f"print('{FENCE}')\n{FENCE}\nx = 1"


def test_empty_block():
    assert block(f"{FENCE}python\n{FENCE}") == ""


# ------------------------------------------------------------------------------- observations
def test_observation_ok_and_error():
    assert format_observation(ToolResult("ok", "391\n", "", 1.0)) == "\nCode execution result: 391\n"
    err = ToolResult("runtime_error", "partial\n", "ZeroDivisionError: division by zero", 1.0)
    assert format_observation(err) == "\nCode execution result: ZeroDivisionError: division by zero\n"
    assert format_observation(ToolResult("no_output", "", "", 1.0)) == "\nCode execution result: \n"
    timeout = ToolResult("timeout", "", "TimeoutError: execution exceeded the 5 s time limit", 1.0)
    assert format_observation(timeout).endswith("TimeoutError: execution exceeded the 5 s time limit\n")


def test_observation_cut_to_max_chars():
    res = ToolResult("output_truncated", "a" * 1000, "", 1.0)
    obs = format_observation(res, max_chars=512)
    assert obs == "\nCode execution result: " + "a" * 512 + "\n"
    assert len(obs) == len("\nCode execution result: ") + 512 + 1
    assert format_observation(ToolResult("ok", "xyz", "", 0), max_chars=2) == "\nCode execution result: xy\n"
