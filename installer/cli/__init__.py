"""``xcp-install``: the installer's command line."""
