"""A real FTP server (pyftpdlib) on loopback, serving a directory to the installer's FTP reader.

Anonymous users and one named user (``site`` / ``secret``) read the same tree. It records the
``REST`` offsets clients ask for, and can end one transfer early, as a server restarted midway
would, to prove that a download resumes where it stopped.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from types import TracebackType

with warnings.catch_warnings():  # pyftpdlib is built on asyncore, deprecated since Python 3.6
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

USER = "site"
PASSWORD = "secret"


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rests: list[int] = []
        self.cuts: dict[str, int] = {}  # file name -> bytes sent before the transfer ends


class _ShortProducer:
    """Hands out at most ``left`` bytes of the file, then says the file has ended."""

    def __init__(self, inner: object, left: int) -> None:
        self.inner = inner
        self.left = left
        self.file = getattr(inner, "file", None)

    def more(self) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self.inner.more()[: self.left]
        self.left -= len(chunk)
        return chunk


def _handler(state: _State, root: Path) -> type[FTPHandler]:
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elr")
    authorizer.add_anonymous(str(root), perm="elr")

    class Handler(FTPHandler):
        use_sendfile = False  # the data goes through push_dtp_data, where a cut can happen
        timeout = 30

        def ftp_REST(self, line: str) -> None:
            with state.lock:
                state.rests.append(int(line))
            super().ftp_REST(line)

        def push_dtp_data(self, data, isproducer=False, file=None, cmd=None) -> None:
            name = Path(getattr(file, "name", "")).name
            with state.lock:
                cut = state.cuts.pop(name, None)
            if cut is not None and isproducer:
                data = _ShortProducer(data, cut)
            super().push_dtp_data(data, isproducer, file, cmd)

    Handler.authorizer = authorizer
    return Handler


class FtpServer:
    """``with FtpServer(dir) as srv: srv.url``; the port is chosen by the kernel."""

    def __init__(self, root: Path) -> None:
        self._state = _State()
        self._server = FTPServer(("127.0.0.1", 0), _handler(self._state, Path(root)))
        self._host, self._port = self._server.address[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self._server.close_all()

    @property
    def url(self) -> str:
        return f"ftp://{self._host}:{self._port}"

    def url_as(self, user: str, password: str) -> str:
        return f"ftp://{user}:{password}@{self._host}:{self._port}"

    @property
    def rests(self) -> list[int]:
        with self._state.lock:
            return list(self._state.rests)

    def end_early_once(self, name: str, after_bytes: int) -> None:
        """The next transfer of file ``name`` stops after ``after_bytes`` bytes, reported done."""
        with self._state.lock:
            self._state.cuts[name] = after_bytes

    def __enter__(self) -> FtpServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
