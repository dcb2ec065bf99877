"""The status line and its questions, in process, on a fake terminal and a pipe."""

from __future__ import annotations

import io

from payprotocol._cli_console import StatusLine


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_question_is_asked_again_after_other_output() -> None:
    term = FakeTerminal()
    status = StatusLine(term)
    status.show(["Signature required", "Please sign"])
    status.prompt("Signed? [y/n] ")
    status.print("The reader cannot abort at this step.")
    text = term.getvalue()
    assert text.count("Signed? [y/n] ") == 2
    assert text.endswith("The reader cannot abort at this step.\nSigned? [y/n] ")
    status.answered("y")  # the user's Enter ended the line
    status.print("done")
    assert term.getvalue().count("Signed? [y/n] ") == 2  # answered: not asked again


def test_on_a_pipe_questions_and_answers_are_whole_lines() -> None:
    pipe = io.StringIO()
    status = StatusLine(pipe)
    status.prompt("Credit or debit? [c/d] ")
    status.show(["Present card", "10.00 EUR"])
    status.answered("d")
    assert pipe.getvalue().splitlines() == [
        "Credit or debit? [c/d]",
        "  reader: Present card | 10.00 EUR",
        "Credit or debit? [c/d]",
        "  answer: d",
    ]
