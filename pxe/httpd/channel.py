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
"""

from __future__ import annotations

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer


class WaitingChannel(HTTPChannel):
    def _flush_some_if_lockable(self, do_close: bool = True) -> None:
        with self.outbuf_lock:
            self._flush_some(do_close=do_close)
            if self.total_outbufs_len < self.adj.outbuf_high_watermark:
                self.outbuf_lock.notify()


def listeners(server: BaseWSGIServer | MultiSocketServer) -> list[BaseWSGIServer]:
    """The listening servers behind ``server``: waitress builds one per address to listen on,
    and returns a :class:`MultiSocketServer` over them when there are several."""
    if isinstance(server, MultiSocketServer):
        return [d for d in server.map.values() if isinstance(d, BaseWSGIServer)]
    return [server]


def wait_for_writers(server: BaseWSGIServer | MultiSocketServer) -> None:
    """Give ``server``'s listeners :class:`WaitingChannel` connections from now on."""
    for listener in listeners(server):
        listener.channel_class = WaitingChannel
