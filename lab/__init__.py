"""The real-boot lab: VMs PXE-boot from ``xcp-provision serve``, install and join a pool.

Everything lives in one network namespace the lab creates and deletes: a bridge, the site's plain
DHCP (dnsmasq, addresses only), the server, and one tap device per QEMU VM.
"""
