"""Building the artefacts a release is made of: Xen, the dom0 image, the installer boot image,
and the demo release. Build time only: nothing here runs on a host or in the installer image.
"""
