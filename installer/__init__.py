"""Code that runs on the host being installed: discovery, disk plan, partitioning, laydown, boot."""
