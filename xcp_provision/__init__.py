"""The ``xcp-provision`` program: the server's commands, the image builders' and the lab's under
one command line. The only package that may import all three; nothing imports it.
"""
