"""The installer boot image: a Debian kernel and an initramfs whose /init runs xcp-install."""
