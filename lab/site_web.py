"""The site's own web server, as the lab plays it: nginx on port 80 of the site's "machine".

Answer files written for a site point at the site's web server for the release and its scripts
(XCP-ng's examples say ``http://pxehost.example.com/xcp-ng/``). The site namespace
(:mod:`lab.netns`) plays that host, its DNS (:mod:`lab.dnsmasq`) gives the name the site's
address, and a plain nginx serves static folders there. It is the site's server, not ours: our
server never sees these requests, and nginx's access log is how the lab sees what a host
fetched from it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.runner import run
from lab.errors import LabError
from lab.netns import LabNetwork
from lab.process import Background, bounded, launch, stopped_unless_ready

PORT = 80


@dataclass(frozen=True)
class SiteWeb:
    """nginx's folder in the results: its configuration, its logs and its temporary files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def requests(self) -> list[str]:
        """The access log's lines so far (none before the first request)."""
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []


def config_text(site: SiteWeb, address: str, locations: Mapping[str, Path]) -> str:
    """nginx's whole configuration: one server on ``address``:80, each URL prefix of
    ``locations`` (ending in ``/``) an alias of a folder. Workers run as root because the lab's
    results may sit in a folder only root can enter (pytest's temporary folders are 0700)."""
    aliases = "".join(
        f"        location {prefix} {{ alias {folder.resolve()}/; }}\n"
        for prefix, folder in locations.items()
    )
    temp = site.root / "temp"
    return (
        "daemon off;\nuser root;\nworker_processes 1;\n"
        f"pid {site.root / 'nginx.pid'};\nerror_log {site.error_log} info;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {site.access_log};\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        "    server {\n"
        f"        listen {address}:{PORT};\n"
        f"{aliases}"
        "    }\n"
        "}\n"
    )


def start_site_web(
    net: LabNetwork,
    workdir: Path,
    locations: Mapping[str, Path],
    max_seconds: float,
    timeout: float = 30.0,
) -> tuple[SiteWeb, Background]:
    """Start nginx in the site namespace on the site's address and wait until it answers."""
    site = SiteWeb(workdir / "site-web")
    (site.root / "temp").mkdir(parents=True, exist_ok=True)
    site.config.write_text(config_text(site, net.site_ip, locations))
    nginx = ["nginx", "-p", site.root, "-c", site.config, "-e", site.error_log]
    argv = [*net.site_exec_prefix(), *bounded(max_seconds), *nginx]
    server = launch("site web server", argv, site.root / "nginx.out")
    url = f"http://{net.site_ip}:{PORT}/"
    deadline = time.monotonic() + timeout
    with stopped_unless_ready(server):
        while time.monotonic() < deadline:
            if not server.running():
                why = f"nginx exited with {server.proc.returncode}: {server.log_tail(5)}"
                raise LabError("site web server", f"{why}; see {site.error_log}")
            probe = run([*net.site_exec_prefix(), "curl", "-s", "-o", "/dev/null",
                         "--max-time", "5", url], check=False)  # fmt: skip
            if probe.returncode == 0:  # any HTTP answer, a 404 too: it is serving
                return site, server
            time.sleep(0.3)
        why = f"nginx did not answer on {url} within {timeout:.0f} s"
        raise LabError("site web server", why)
