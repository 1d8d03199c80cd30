"""The answer-file model: parse, validate, write and render XCP-ng 8.3 answer files."""
