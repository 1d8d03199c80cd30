"""Files sent by waitress without reading the same bytes again for every send.

For a file response (``wsgi.file_wrapper``), waitress asks its file buffer, for each send, for
as much as the socket's send buffer holds (4 MiB on loopback), sends what the socket takes,
seeks back, and skips what went out: when the socket takes 200 KiB, the next send reads those 4
MiB again. A rack fetching its kernels and initrds from ``serve`` spent most of the workers'
time in those reads. Here each piece of the file is read once and the reads that follow inside
it are slices of it (no copy); pieces are small so 100 transfers hold 25 MiB, not 400.

Behind nginx (``release_accel_prefix``) none of this runs: nginx sends the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from waitress.buffers import ReadOnlyFileBasedBuffer

PIECE_BYTES = 256 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ReadOnce:
    """The file-like object waitress's ``ReadOnlyFileBasedBuffer`` reads: ``read`` gives
    memoryviews of the piece last read from the file (``os.pread``, at the position waitress
    keeps here with ``seek`` and ``tell``)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._fd = file.fileno()
        self._size = os.fstat(self._fd).st_size
        self._pos = file.tell()
        self._piece = memoryview(b"")
        self._piece_at = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> memoryview:
        if size < 0:
            size = max(0, self._size - self._pos)
        start = self._pos - self._piece_at
        if not 0 <= start < len(self._piece):
            self._piece = memoryview(os.pread(self._fd, min(size, PIECE_BYTES), self._pos))
            self._piece_at, start = self._pos, 0
        data = self._piece[start : start + size]
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._piece = memoryview(b"")
        self._file.close()


def _file_wrapper(file: BinaryIO, block_size: int = 32768) -> ReadOnlyFileBasedBuffer:
    try:
        readable: BinaryIO | _ReadOnce = _ReadOnce(file)
    except OSError:  # no file descriptor (BytesIO): nothing read from disk
        readable = file
    # Still waitress's own class: waitress hands a file to its send loop only when the
    # response's class is exactly that one.
    return ReadOnlyFileBasedBuffer(readable, block_size)


def read_once_files(app: WsgiApp) -> WsgiApp:
    """``app`` with waitress's file wrapper swapped for one that reads each byte once."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("wsgi.file_wrapper") is ReadOnlyFileBasedBuffer:
            environ["wsgi.file_wrapper"] = _file_wrapper
        return app(environ, start_response)

    return wsgi
