"""waitress's connection, with an event loop that waits for a response being written instead of
going round and round.

A request thread holds its connection's output lock while it adds to the response and sends
what the socket takes. waitress's event loop, finding the connection writable meanwhile (the
bytes are counted before they are sent), tries that lock without waiting; when it fails, the
connection is still writable, so the next poll() returns at once and the loop tries again.
Spinning so, the loop thread holds the interpreter almost all the time, while the request
thread needs it to finish the write and let go of the lock: each hand-over waits out the switch
interval, and every other request thread of the process waits behind both. In a burst of 1,000
registrations (bench/register_bench.py), a worker's loop went round 5,000-15,000 times in half
a second, failing to take the lock each time, with one core full and its request threads at
1-2% of a core; such rounds took 3-6x as long as the others.

Here the loop waits for the lock, as waitress's own close of a connection already does. The
holder is inside a short write (the socket does not block) and lets go without the loop's help;
where it must wait for the loop to drain its output, it waits on the lock's condition, which
lets go of the lock.

The connection also tells the server's event loop (:mod:`pxe.httpd.eventloop`) when what it
wants may have changed without an event of the loop's own: added, removed, and while a request
thread is in it.
"""

from __future__ import annotations

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

from pxe.httpd.eventloop import EventLoop


class WaitingChannel(HTTPChannel):
    reports_changes = True  # to the event loop, which then asks it only when told

    def _flush_some_if_lockable(self, do_close: bool = True) -> None:
        with self.outbuf_lock:
            self._flush_some(do_close=do_close)
            if self.total_outbufs_len < self.adj.outbuf_high_watermark:
                self.outbuf_lock.notify()

    def add_channel(self, map: dict | None = None) -> None:  # type: ignore[type-arg]
        super().add_channel(map)
        self.server.asyncore.changed(self._fileno)

    def del_channel(self, map: dict | None = None) -> None:  # type: ignore[type-arg]
        fd = self._fileno
        super().del_channel(map)
        if fd is not None:
            self.server.asyncore.changed(fd)

    def service(self) -> None:
        """Run in a request thread: the response it writes changes what the loop must wait for,
        from outside the loop."""
        fd = self._fileno
        if fd is None:  # closed while the request waited for a thread
            super().service()
            return
        loop: EventLoop = self.server.asyncore
        loop.serving(fd)
        try:
            super().service()
        finally:
            loop.served(fd)


def listeners(server: BaseWSGIServer | MultiSocketServer) -> list[BaseWSGIServer]:
    """The listening servers behind ``server``: waitress builds one per address to listen on,
    and returns a :class:`MultiSocketServer` over them when there are several."""
    if isinstance(server, MultiSocketServer):
        return [d for d in server.map.values() if isinstance(d, BaseWSGIServer)]
    return [server]


def adopt(server: BaseWSGIServer | MultiSocketServer, loop: EventLoop | None = None) -> None:
    """Give ``server`` our event loop (a new one unless given), and its listeners
    :class:`WaitingChannel` connections from now on (they report to that loop)."""
    loop = loop or EventLoop()
    server.asyncore = loop
    for listener in listeners(server):
        listener.asyncore = loop
        listener.channel_class = WaitingChannel
