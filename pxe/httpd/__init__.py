"""How the server's HTTP runs: granian on sockets this process binds, in worker processes. The
Flask application it serves is :mod:`pxe.web`; nothing here knows a route.
"""
