"""The dom0 payload: the first-boot agent and its systemd unit, as they run inside dom0."""
