"""The operators' web dashboard under /ui: hosts, discovered hosts, pools; signed in by token."""

from pxe.web.dashboard.views import bp

__all__ = ["bp"]
