"""The operators' web dashboard under /ui: hosts, discovered hosts, pools; signed in by token."""

from pxe.web.dashboard import power_views  # noqa: F401 - its routes join bp
from pxe.web.dashboard.views import bp

__all__ = ["bp"]
