"""Imported by the export pool's forkserver as it starts, and by nothing else: it dies with the server.

Importing it anywhere else would tie that process to its own parent; see ``children.py``.
"""

from exportd.engine.children import die_with_parent

die_with_parent()
