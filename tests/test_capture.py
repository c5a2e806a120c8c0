"""What code run for a client prints, and that it cannot read the gateway's terminal (fast tier)."""

from __future__ import annotations

import getpass
import io
import sys
import threading
import time

import pytest

from spark_gateway import capture
from spark_gateway.capture import MAX_EVENT_CHARS, OutputSink, RoutingInput, RoutingStream, StdinUnavailable


def test_writes_are_kept_in_order_and_joined_per_stream() -> None:
    """Consecutive writes to one stream come out as one piece; a switch of stream starts another."""
    wakes = []
    sink = OutputSink(lambda: wakes.append(1))
    for stream, text in [("stdout", "a"), ("stdout", "b"), ("stderr", "!"), ("stdout", "c"), ("stdout", "")]:
        sink.write(stream, text)
    assert sink.take() == [("stdout", "ab"), ("stderr", "!"), ("stdout", "c")]
    assert wakes == [1], "woken once, when there was nothing waiting"
    assert sink.take() == []


def test_long_output_is_split_into_pieces_any_client_accepts() -> None:
    """A run longer than MAX_EVENT_CHARS comes out in pieces of at most that many characters, all of it."""
    sink = OutputSink(lambda: None, max_pending=10 * MAX_EVENT_CHARS)
    text = "x" * (2 * MAX_EVENT_CHARS + 5)
    sink.write("stdout", text)
    pieces = sink.take()
    assert [len(t) for _, t in pieces] == [MAX_EVENT_CHARS, MAX_EVENT_CHARS, 5]
    assert "".join(t for _, t in pieces) == text


def test_a_printer_ahead_of_the_socket_waits_instead_of_dropping() -> None:
    """Past max_pending characters the writer blocks until take() frees room; nothing is lost."""
    sink = OutputSink(lambda: None, max_pending=10)
    sink.write("stdout", "0123456789")
    done = threading.Event()
    def write() -> None:
        sink.write("stdout", "more")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert not done.wait(0.2), "the second write waits for room"
    assert sink.take() == [("stdout", "0123456789")]
    assert done.wait(5)
    thread.join()
    assert sink.take() == [("stdout", "more")]


def test_a_waiting_printer_can_be_stopped_and_released() -> None:
    """check_stop is called while waiting (an interrupt lands there); close() releases waiters."""
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise KeyboardInterrupt

    sink = OutputSink(lambda: None, max_pending=1, check_stop=check)
    sink.write("stdout", "x")
    outcome: list[str] = []

    def write() -> None:
        try:
            sink.write("stdout", "y")
            outcome.append("written")
        except KeyboardInterrupt:
            outcome.append("interrupted")

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.05)
    stop.set()
    thread.join(5)
    assert outcome == ["interrupted"]
    stop.clear()
    sink.close()
    sink.write("stdout", "z")  # a closed sink no longer waits for room
    assert sink.take() == [("stdout", "xz")]


def test_output_is_routed_per_thread() -> None:
    """A thread routed to a sink writes there; every other thread writes to the real stream."""
    real = io.StringIO()
    stream = RoutingStream("stdout", real)  # type: ignore[arg-type]
    sink = OutputSink(lambda: None)

    def worker() -> None:
        capture.route_to(sink)
        try:
            stream.write("from the cell\n")
            stream.flush()
        finally:
            capture.route_to(None)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    stream.write("from the gateway\n")
    stream.flush()
    assert sink.take() == [("stdout", "from the cell\n")]
    assert real.getvalue() == "from the gateway\n"
    assert not stream.isatty() and stream.encoding == "utf-8"


def test_stdin_is_refused_to_client_code_only() -> None:
    """input() in a routed thread raises StdinUnavailable; the gateway itself still reads its stdin."""
    guard = RoutingInput(io.StringIO("typed\n"))  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def worker() -> None:
        capture.route_to(OutputSink(lambda: None))
        try:
            for read in (guard.readline, guard.read, guard.fileno):
                try:
                    read()
                except StdinUnavailable as exc:
                    errors.append(exc)
        finally:
            capture.route_to(None)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 3 and "nobody can type" in str(errors[0])
    assert guard.readline() == "typed\n" and guard.readable() and not guard.isatty()


def test_install_replaces_the_process_streams_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """install() puts routing proxies on sys.stdout/stderr, a guard on stdin and getpass; twice is once."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: "secret")
    capture.install()
    first = (sys.stdout, sys.stderr, sys.stdin, getpass.getpass)
    capture.install()
    assert (sys.stdout, sys.stderr, sys.stdin, getpass.getpass) == first
    assert isinstance(sys.stdout, RoutingStream) and isinstance(sys.stdin, RoutingInput)
    assert getpass.getpass() == "secret", "the gateway's own thread is not guarded"
    capture.route_to(OutputSink(lambda: None))
    try:
        with pytest.raises(StdinUnavailable, match="getpass"):
            getpass.getpass()
    finally:
        capture.route_to(None)
