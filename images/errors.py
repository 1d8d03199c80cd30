"""The base of every image-building error, so the CLI turns them all into one sentence."""

from __future__ import annotations


class ImageError(Exception):
    """An image could not be built or imported; the message says what, where and why."""
