"""The dom0 payload: the first-boot agent and the overlay that places it in a root."""
