"""Helpers shared by tests: real servers, real disk images, small releases."""
