"""How the server's HTTP runs: waitress on sockets this process binds, worker processes, and file
sending. The Flask application it serves is :mod:`pxe.web`; nothing here knows a route.
"""
