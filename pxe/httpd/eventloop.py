"""waitress's event loop on epoll, each turn costing what changed rather than what is open.

waitress's loop asks every open connection at every turn whether it wants to read or write,
then hands the answers to ``select`` or ``poll``. Two things follow:

- A turn costs about 0.3 microseconds per open connection in Python before the kernel is asked
  anything: 150 microseconds with 500 connections open, and a worker turns several times per
  request. In a burst of 1,000 registrations it was 6-10% of each one's CPU.
- ``select`` refuses descriptors above 1023: a worker with about a thousand connections open
  (the limit ``serve`` sets) and its own files stopped at the first turn with "filedescriptor out
  of range in select()", dropping every connection it held.

Here the loop keeps one epoll set of what each connection wants and asks a connection again
only when its answer may have changed: it had an event, it was added or removed, a request
thread is in it (its response is being written, from another thread), or a request thread just
left it. The connections report the last three themselves (:mod:`pxe.httpd.channel`): in
waitress 3, ``HTTPChannel.service`` is the one place a request thread changes a connection. The
listening sockets and waitress's wake-up pipe, few and not ours, are asked at every turn.
Once a second every connection is asked, for what no event shows: waitress's maintenance, run
from inside the listener's ``readable()``, marks connections idle past ``channel_timeout`` for
closing.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from typing import Protocol

from waitress import wasyncore

# How often every connection is asked again; see the module's docstring.
FULL_SCAN_S = 1.0

_READ = select.EPOLLIN | select.EPOLLPRI
_WRITE = select.EPOLLOUT


class _Dispatcher(Protocol):
    accepting: bool
    _fileno: int | None

    def readable(self) -> bool: ...
    def writable(self) -> bool: ...


class EventLoop:
    """Stands in for waitress's ``wasyncore`` module as a server's ``asyncore``: waitress calls
    its ``loop`` with the same arguments. One per server (its listeners share it)."""

    def __init__(self, full_scan_s: float = FULL_SCAN_S) -> None:
        self._full_scan_s = full_scan_s
        self._epoll = select.epoll()
        # fd -> (the dispatcher it was registered for, the events it was registered with)
        self._watched: dict[int, tuple[_Dispatcher, int]] = {}
        self._changed: set[int] = set()
        # fd -> request threads in its connection: a thread queues the connection's next
        # pipelined request before it leaves, so the next thread may enter first.
        self._serving: dict[int, int] = {}
        self._serving_lock = threading.Lock()
        self._asked_always: list[int] = []  # listeners and the wake-up pipe
        self._next_full_scan = 0.0

    # -- what the connections report (``changed`` and ``served`` from request threads too) ---

    def changed(self, fd: int) -> None:
        """What ``fd``'s connection wants may have changed (added, removed)."""
        self._changed.add(fd)

    def serving(self, fd: int) -> None:
        """A request thread is in ``fd``'s connection: ask it at every turn until it leaves."""
        with self._serving_lock:
            self._serving[fd] = self._serving.get(fd, 0) + 1

    def served(self, fd: int) -> None:
        """The request thread left; ask once more. Marked changed before the thread is no
        longer counted as in it, so a turn between the two sees one or the other."""
        self._changed.add(fd)
        with self._serving_lock:
            left = self._serving[fd] - 1
            if left:
                self._serving[fd] = left
            else:
                del self._serving[fd]

    # -- waitress's side ------------------------------------------------------------------

    def loop(
        self,
        timeout: float = 30.0,
        use_poll: bool = False,
        map: dict[int, _Dispatcher] | None = None,
        count: int | None = None,
    ) -> None:
        """``wasyncore.loop``'s contract: turn until ``map`` is empty, or ``count`` times."""
        del use_poll  # always epoll
        if map is None:
            raise ValueError("the event loop needs the server's map")
        while map and (count is None or count > 0):
            self._turn(timeout, map)
            if count is not None:
                count -= 1

    def _turn(self, timeout: float, map: dict[int, _Dispatcher]) -> None:
        now = time.monotonic()
        if now >= self._next_full_scan:
            self._next_full_scan = now + self._full_scan_s
            self._changed.clear()
            asked = list({*map, *self._watched})
            self._asked_always = [
                fd for fd, d in map.items() if not getattr(d, "reports_changes", False)
            ]
        else:
            # The threads in connections first: one leaving after this line is in _changed.
            asked = [*self._serving, *self._asked_always]
            changed = self._changed
            while changed:
                asked.append(changed.pop())
        for fd in asked:
            self._update(fd, map.get(fd))
        ready = [(fd, map.get(fd), flags) for fd, flags in self._epoll.poll(timeout)]
        for fd, dispatcher, flags in ready:
            if dispatcher is None:  # gone from the map unannounced: unregistered next turn
                self._changed.add(fd)
                continue
            if dispatcher._fileno is None:
                continue  # closed by an earlier event of this turn; announced as it closed
            wasyncore.readwrite(dispatcher, flags)
            self._changed.add(fd)

    def _update(self, fd: int, dispatcher: _Dispatcher | None) -> None:
        """Register what ``dispatcher`` wants now, as poll() would be asked for it."""
        known = self._watched.get(fd)
        events = 0
        if dispatcher is not None:
            if dispatcher.readable():
                events |= _READ
            if dispatcher.writable() and not dispatcher.accepting:
                events |= _WRITE
        if known is not None and known[0] is dispatcher:
            if known[1] == events:
                return
            if events:
                self._epoll.modify(fd, events)
                self._watched[fd] = (dispatcher, events)
                return
        if known is not None:
            del self._watched[fd]
            # A closed socket has left the set by itself; its number may be in use again.
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
        if dispatcher is not None and events:
            self._epoll.register(fd, events)
            self._watched[fd] = (dispatcher, events)
