"""The stress tier runs on both stores, like the integration tier (SQLite, and PostgreSQL when reachable).

Each test takes its size as a parameter: a small slice runs in `make test`, the full size is marked
`stress` and runs under `make stress`.
"""

from tests.integration.conftest import backend  # noqa: F401 - the store every test here runs on
