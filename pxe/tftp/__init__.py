"""TFTP: the tiny first hop of a network boot (loaders and per-host configs), served by tftpy."""
