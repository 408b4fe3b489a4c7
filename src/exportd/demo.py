"""Demo data: a user and a project of synthetic microscopy-like images with cell polygons."""

from __future__ import annotations

from pydantic import TypeAdapter

from exportd.config import Settings
from exportd.domain.requests import Credentials, PolygonIn
from exportd.services import Services, Upload
from exportd.storage import LocalStorage
from exportd.store.migrate import upgrade
from exportd.store.uow import Store
from exportd.synthetic import synthetic_project

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo1234"
DEMO_PROJECT = "Demo spheroids"
DEMO_IMAGES = 24

_POLYGONS = TypeAdapter(list[PolygonIn])


async def seed_demo(services: Services) -> tuple[str, str]:
    """Create the demo user and project unless they exist. Returns (user id, project id)."""
    user = await services.store.query(lambda repo: repo.user_by_email(DEMO_EMAIL))
    if user is None:
        user = await services.register(Credentials(email=DEMO_EMAIL, password=DEMO_PASSWORD))
    for project in await services.projects(user.id):
        if project.name == DEMO_PROJECT and project.owner_id == user.id:
            return user.id, project.id
    project = await services.create_project(user.id, DEMO_PROJECT)
    uploads, segmentation = [], {}
    for name, png, polygons in synthetic_project(count=DEMO_IMAGES, seed=0):
        uploads.append(Upload(name=name, data=png))
        segmentation[name] = _POLYGONS.validate_python(polygons)
    await services.add_images(user.id, project.id, uploads, segmentation)
    return user.id, project.id


async def seed_demo_with(settings: Settings) -> tuple[str, str]:
    """Seed with a store of its own (before the server starts)."""
    settings = settings.resolved()
    await upgrade(settings.database_url)
    store = Store(settings.database_url)
    try:
        return await seed_demo(Services(store, LocalStorage(settings.storage_dir), settings))
    finally:
        await store.close()
