"""The HTTP side of the server: a Flask app factory and one blueprint per concern."""
