"""Terminal helpers shared by the ``payprotocol`` commands (private).

Strategy: the reader's two ``information`` lines are the merchant's view of a
payment, so they are shown as they are. On a terminal they live on one status
line rewritten in place (carriage return, then spaces); on a pipe or a file
each change becomes a plain line, so logs and tests read naturally. Callbacks
run on the client's dispatcher thread while the main thread prints results,
so every write goes through one lock.

Questions asked while a transaction runs (a signature, an application menu)
read standard input through :class:`StdinLines`: one daemon thread reads lines
into a queue, so a question can be given up (the transaction ended, or was
aborted) without leaving a thread blocked in ``input()`` that ``close()`` would
have to wait for.
"""

from __future__ import annotations

import codecs
import os
import queue
import shutil
import sys
import threading
from decimal import Decimal
from typing import List, Optional, Sequence, TextIO

from . import codec
from . import models as m
from ._money import display

__all__ = [
    "StatusLine",
    "StdinLines",
    "describe_transaction",
    "framed",
    "money",
    "transaction_json",
]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class StatusLine:
    """Shows the latest two ``information`` lines of a reader on ``stream``.

    ``show`` is called from callbacks; ``print`` writes a normal line (clearing
    the status line first on a terminal, so the two never overlap); ``finish``
    ends the live line so that later output starts on a fresh line. The live
    line is redrawn with a carriage return and spaces only (no ANSI escapes,
    which older Windows consoles print literally), cut to the terminal width so
    it never wraps.
    """

    def __init__(self, stream: Optional[TextIO] = None, *, prefix: str = "  reader: ") -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.live = _is_tty(self.stream)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._current: Optional[str] = None  # text on the live line (terminal only)
        self._last: Optional[tuple[str, ...]] = None
        self._mid_line = False  # a question waits for its answer on the current line
        self._question: Optional[str] = None  # asked, not answered yet: shown again

    def show(self, information: Sequence[str], note: str = "") -> None:
        """Display the reader's lines (and an optional short note) if they changed."""
        lines = tuple(str(line) for line in information) + ((note,) if note else ())
        with self._lock:
            if lines == self._last:
                return
            self._last = lines
            text = self.prefix + " | ".join(line for line in lines if line)
            self._end_question()
            if self.live:
                text = text[: max(shutil.get_terminal_size().columns - 1, 20)]
                self.stream.write(self._erase() + text)
                self._current = text
            else:
                self.stream.write(text + "\n")
            self._ask_again()
            self.stream.flush()

    def print(self, text: str = "") -> None:
        """Write ``text`` as its own line(s), keeping the live line intact below it."""
        with self._lock:
            self._end_question()
            if self.live and self._current is not None:
                self.stream.write(self._erase() + text + "\n" + self._current)
            else:
                self.stream.write(text + "\n")
            self._ask_again()
            self.stream.flush()

    def prompt(self, question: str) -> None:
        """Write a question on a fresh line; the answer follows it (on a terminal,
        on the same line). Until :meth:`answered`, any other output is followed
        by the question again, so a Ctrl-C message or a reader update never
        leaves the user looking at no question."""
        with self._lock:
            self._end_question()
            self._question = question
            self._ask_again()
            self.stream.flush()

    def _ask_again(self) -> None:
        if self._question is None:
            return
        if self.live and self._current is not None:  # keep the live line above it
            self.stream.write("\n")
            self._current = None
        if self.live:
            self.stream.write(self._question)
            self._mid_line = True
        else:  # a pipe or a file: whole lines only
            self.stream.write(self._question.rstrip() + "\n")

    def answered(self, answer: Optional[str]) -> None:
        """The question got ``answer`` (``None``: it never will). On a terminal
        the user's Enter already ended the line; elsewhere the answer follows on
        its own line (``  answer: y``), so a log shows what was answered."""
        with self._lock:
            if self._question is None:
                return
            self._question = None
            if self.live and self._mid_line and answer is None:
                self.stream.write("\n")
            elif not self.live:
                self.stream.write(f"  answer: {'(none)' if answer is None else answer}\n")
            self._mid_line = False
            self.stream.flush()

    def finish(self) -> None:
        """End the live line (a newline on a terminal) and forget what was shown."""
        with self._lock:
            self._end_question()
            self._question = None
            if self.live and self._current is not None:
                self.stream.write("\n")
                self.stream.flush()
            self._current = None
            self._last = None

    def _end_question(self) -> None:
        if self._mid_line:  # never continue a line that holds a question
            self.stream.write("\n")
            self._mid_line = False

    def _erase(self) -> str:
        if self._current is None:
            return ""
        return "\r" + " " * len(self._current) + "\r"


class StdinLines:
    """Lines of standard input, read by one daemon thread and handed out on demand.

    :meth:`read` waits for the next line but gives up when ``cancel`` is set
    (returning ``None``), and returns ``None`` at end of input.
    """

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._lines: queue.SimpleQueue[Optional[str]] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._eof = False
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._pump, name="payprotocol-stdin", daemon=True
                )
                self._thread.start()

    def _pump(self) -> None:
        try:
            fd: Optional[int] = self._stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation too
            fd = None
        try:
            if fd is None:
                for line in self._stream:
                    self._lines.put(line.rstrip("\r\n"))
            else:
                self._pump_descriptor(fd)
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def _pump_descriptor(self, fd: int) -> None:
        """Read the file descriptor itself: a thread blocked in ``sys.stdin``'s
        own read holds its buffer's lock, and the interpreter's shutdown then
        waits for that lock until standard input closes (a finished command
        that does not exit)."""
        encoding = getattr(self._stream, "encoding", None) or "utf-8"
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        pending = ""
        while True:
            chunk = os.read(fd, 4096)
            pending += decoder.decode(chunk, final=not chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                self._lines.put(line.rstrip("\r"))
            if not chunk:
                break
        if pending:
            self._lines.put(pending.rstrip("\r"))

    def read(self, cancel: Optional[threading.Event] = None) -> Optional[str]:
        """The next line without its newline; ``None`` at end of input or when
        ``cancel`` gets set while waiting."""
        if self._eof:
            return None
        self._start()
        while True:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    return None
                continue
            if line is None:
                self._eof = True
            return line


def framed(text: str, width: int = 40) -> str:
    """A receipt between two cut lines, as it would leave a ``width``-column
    printer, so two receipts in a row never run into each other."""
    cut = ("- " * (width // 2)).rstrip()
    return "\n".join([cut, text.rstrip("\n"), cut])


def money(amount: Optional[Decimal], currency: Optional[str]) -> str:
    """``10.00 EUR`` (in the currency's minor units where that changes no
    value); an absent amount is shown as ``-``."""
    if amount is None:
        return "-"
    return display(amount, currency)


_CAPTURABLE = (m.TransactionStatus.APPROVED.value, m.TransactionStatus.ACCEPTED.value)


def describe_transaction(transaction: m.Transaction) -> List[str]:
    """A few human-readable lines about a transaction (its outcome first)."""
    status = str(transaction.status) if transaction.status is not None else "UNKNOWN"
    headline = f"{status}: {transaction.type or 'transaction'} of "
    headline += money(transaction.amount, transaction.currency)
    details = transaction.status_details
    if details is not None and details.code and details.code != status:
        headline += f" ({details.code}"
        headline += f": {details.description})" if details.description else ")"
    lines = [headline]
    card = transaction.card_details
    if card is not None and (card.scheme or card.masked_card_number):
        lines.append(f"  card:              {card.scheme or ''} {card.masked_card_number or ''}")
    if transaction.included_tip_amount:
        lines.append(
            f"  tip included:      {money(transaction.included_tip_amount, transaction.currency)}"
        )
    lines.append(f"  transaction id:    {transaction.transaction_identifier or '-'}")
    lines.append(f"  custom identifier: {transaction.custom_identifier or '-'}")
    if transaction.referenced_transaction_identifier:
        lines.append(f"  references:        {transaction.referenced_transaction_identifier}")
    if transaction.captured is False and status in _CAPTURABLE:  # money is held, to capture
        lines.append("  captured:          no (a pre-authorisation: capture it later)")
    return lines


def transaction_json(transaction: m.Transaction) -> str:
    """The transaction as its wire JSON object (amounts written exactly as held)."""
    return codec.wire_json(transaction)
