"""The writer thread between the dom0 download and tar: order kept, memory bounded, errors back."""

from __future__ import annotations

import os
import threading
import time

import pytest

from installer.handoff import Handoff


def test_everything_arrives_in_order_and_close_waits_for_it() -> None:
    got: list[bytes] = []

    def slow(data: bytes) -> None:
        time.sleep(0.001)
        got.append(data)

    pieces = [os.urandom(n) for n in range(1, 200)]
    handoff = Handoff(slow, "test", budget=1000)
    for piece in pieces:
        handoff.write(piece)
    handoff.close()
    assert got == pieces


def test_a_pipe_reader_gets_the_bytes_while_the_writer_goes_on() -> None:
    """Through a real pipe, as to tar: what the thread wrote reads back whole."""
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_fd, 1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    sent = os.urandom(4 << 20)
    with os.fdopen(write_fd, "wb") as sink:
        handoff = Handoff(sink.write, "test")
        for start in range(0, len(sent), 1 << 20):
            handoff.write(sent[start : start + (1 << 20)])
        handoff.close()
    reader.join()
    os.close(read_fd)
    assert bytes(received) == sent


def test_the_producer_waits_once_the_budget_is_queued() -> None:
    release = threading.Event()
    handoff = Handoff(lambda _data: release.wait(), "test", budget=100)
    handoff.write(bytes(60))  # taken by the thread, which now waits in the target
    handoff.write(bytes(30))
    handoff.write(bytes(10))  # 100 queued: the budget, not past it
    blocked = threading.Thread(target=handoff.write, args=(bytes(1),))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "a write past the budget returned before anything was written"
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    handoff.close()


def test_a_piece_larger_than_the_budget_goes_alone() -> None:
    got: list[int] = []
    handoff = Handoff(lambda data: got.append(len(data)), "test", budget=10)
    handoff.write(bytes(50))
    handoff.write(bytes(5))
    handoff.close()
    assert got == [50, 5]


def test_the_targets_error_comes_back_from_write_and_close() -> None:
    calls: list[bytes] = []

    def broken(data: bytes) -> None:
        calls.append(data)
        raise BrokenPipeError(32, "Broken pipe")

    handoff = Handoff(broken, "test")
    handoff.write(b"first")
    deadline = time.monotonic() + 5
    with pytest.raises(BrokenPipeError):
        while time.monotonic() < deadline:
            handoff.write(b"more")
            time.sleep(0.01)
    with pytest.raises(BrokenPipeError):
        handoff.close()
    assert calls == [b"first"], "the thread wrote on after its target failed"


def test_abandon_drops_what_is_queued() -> None:
    release = threading.Event()
    got: list[bytes] = []

    def held(data: bytes) -> None:
        release.wait()
        got.append(data)

    handoff = Handoff(held, "test")
    handoff.write(b"in the target")
    time.sleep(0.1)
    handoff.write(b"queued")
    threading.Timer(0.2, release.set).start()  # the target returns while abandon waits
    handoff.abandon()
    assert got == [b"in the target"]
