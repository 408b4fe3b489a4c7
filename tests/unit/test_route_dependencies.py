"""Every dependency of every route runs on the event loop, never in FastAPI's thread pool.

FastAPI runs a plain function dependency through its thread pool: a hop to a
worker thread and back, each a wait for the GIL against the export pipelines.
A cancel used to make two such hops before its own work began.
"""

from __future__ import annotations

import inspect

from exportd.api.app import create_app
from exportd.api.openapi import _routes
from exportd.testing import test_settings


def _dependencies(dependant):
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def test_every_route_dependency_is_a_coroutine_function(tmp_path):
    routes = _routes(create_app(test_settings(tmp_path / "data")).fastapi)
    assert ("POST", "/api/projects/{project_id}/export/{job_id}/cancel") in routes
    threaded = sorted({f"{path}: {dependency.call.__name__}"
                       for (_, path), route in routes.items() for dependency in _dependencies(route.dependant)
                       if dependency.call is not None and not inspect.iscoroutinefunction(dependency.call)})
    assert threaded == []


def test_every_api_route_is_a_coroutine_function(tmp_path):
    routes = _routes(create_app(test_settings(tmp_path / "data")).fastapi)
    assert routes
    threaded = sorted(path for (_, path), route in routes.items() if not inspect.iscoroutinefunction(route.endpoint))
    assert threaded == []
