"""The ground every package stands on; it imports nothing of ours.

The command runner and its errors, the release format, the dom0 contract (paths the installer and
the image builders both use), the wire paths between installer, agent and server, and the lazy
command group of both command lines.
"""
