"""Persistence: tables, the repository of guarded statements, and the unit of work."""
