"""The interactive installer (urwid): screens fill the answer-file model, then the backend runs."""
