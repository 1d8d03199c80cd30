"""What a network-booting machine boots, decided in one place.

HTTP (the iPXE script) and TFTP (pxelinux and GRUB files) ask the same question of the same
inventory; both call :func:`pxe.boot.decide.decide_and_record` and only render its answer in their
loader's dialect (:mod:`pxe.boot.render`), so a rule changed here holds for every boot protocol.
"""
