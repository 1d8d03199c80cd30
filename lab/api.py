"""The admin REST API of the server under test, called from inside the lab's namespace.

The server only listens inside the namespace, so requests go through ``curl`` run there (the
harness's own Python stays in the host namespace). The bearer token is read by curl from a
header file, never put on a command line other processes can see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import CommandError
from common.runner import run
from lab.errors import LabError
from lab.netns import LabNetwork

_STATUS_MARK = "\n@@status="


class ApiError(LabError):
    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.status = status
        super().__init__("server API", f"{method} {path} answered {status}: {message}")


@dataclass(frozen=True)
class LabApi:
    net: LabNetwork
    base_url: str
    header_file: Path

    @classmethod
    def with_token(cls, net: LabNetwork, base_url: str, token: str, workdir: Path) -> LabApi:
        header_file = workdir / "api-auth.header"
        header_file.touch(mode=0o600)
        header_file.write_text(f"Authorization: Bearer {token}\n")
        return cls(net, base_url.rstrip("/"), header_file)

    def fetch(
        self, method: str, path: str, body: Any = None, timeout: float = 30
    ) -> tuple[int, str]:
        """Status and text of one request; no exception for HTTP errors."""
        argv: list[str] = [
            *self.net.exec_prefix(),
            "curl",
            "-sS",
            "--max-time",
            str(int(timeout)),
            "-X",
            method,
            "-H",
            f"@{self.header_file}",
            "-w",
            _STATUS_MARK + "%{http_code}",
        ]
        data = None
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
            data = json.dumps(body)
        argv.append(f"{self.base_url}{path}")
        try:
            out = run(argv, input=data, timeout=timeout + 10).stdout
        except CommandError as exc:
            raise LabError("server API", f"{method} {path}: {exc}") from exc
        text, _, status = out.rpartition(_STATUS_MARK)
        return int(status or 0), text

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """The decoded JSON answer of a request that must succeed."""
        status, text = self.fetch(method, path, body, timeout)
        if not 200 <= status < 300:
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text.strip()[:300]
            raise ApiError(method, path, status, str(message))
        return json.loads(text) if text.strip() else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)
