"""Ingest's steps: parse and validate lines, transform them into the outputs, read them back."""
