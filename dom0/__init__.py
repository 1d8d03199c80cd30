"""The dom0 image and its first-boot agent."""
