"""Dynamic DNS (RFC 2136, TSIG) for provisioned hosts: settings, errors, updates."""
