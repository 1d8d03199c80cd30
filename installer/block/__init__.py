"""Thin device modules, one job each (curtin's ``curtin/block`` layering).

Each wraps one tool or one kernel interface and returns plain values; the decisions (which disk,
what to wipe, which layout) live in ``installer.plan`` and ``installer.partition``.
"""
