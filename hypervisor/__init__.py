"""How Xen boots: its command line and the GRUB entries the installer writes."""
