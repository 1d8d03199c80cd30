"""``python redfish_serve.py WORKDIR PORT``: sushy-tools' Redfish emulator, configured from
WORKDIR/emulator.conf as its own command line would, on loopback; each request's method, path
and JSON body appended to WORKDIR/requests.jsonl first. Started by ``bmc_sim.running_redfish``.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from sushy_tools.emulator import main as emulator
from werkzeug.serving import run_simple


def serve(workdir: Path, port: int) -> None:
    app = emulator.app
    app.configure(config_file=str(workdir / "emulator.conf"))
    inner = app.wsgi_app
    log_path = workdir / "requests.jsonl"

    def logged(environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        entry = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "body": json.loads(body) if body.strip().startswith(b"{") else None,
        }
        with log_path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        return inner(environ, start_response)

    app.wsgi_app = logged  # type: ignore[method-assign]
    run_simple("127.0.0.1", port, app, threaded=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
