"""The hypervisor artefact (xen.gz), the release format, and Xen boot entries."""
