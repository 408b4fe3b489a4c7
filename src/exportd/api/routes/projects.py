"""Projects, their images and segmentations, and shares."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from pydantic import TypeAdapter, ValidationError

from exportd.api.deps import AppServices, CurrentUser
from exportd.domain.errors import BadRequest
from exportd.domain.requests import PolygonIn, ProjectRequest, SegmentationRequest, ShareRequest
from exportd.services import Upload
from exportd.views import image_view, project_view, user_view

router = APIRouter(prefix="/projects", tags=["projects"])

_SEGMENTATION = TypeAdapter(dict[str, list[PolygonIn]])


@router.post("", status_code=201)
async def create_project(body: ProjectRequest, user: CurrentUser, services: AppServices) -> dict:
    return project_view(await services.create_project(user.id, body.name), user.id)


@router.get("")
async def list_projects(user: CurrentUser, services: AppServices) -> dict:
    return {"projects": [project_view(row, user.id) for row in await services.projects(user.id)]}


@router.get("/{project_id}")
async def get_project(project_id: str, user: CurrentUser, services: AppServices) -> dict:
    project, images, counts = await services.project(user.id, project_id)
    view = project_view(project, user.id)
    view["images"] = [image_view(image, counts.get(image.id, 0)) for image in images]
    view["imageCount"] = len(images)
    return view


@router.delete("/{project_id}", status_code=204)
async def delete_project(project_id: str, user: CurrentUser, services: AppServices) -> Response:
    await services.delete_project(user.id, project_id)
    return Response(status_code=204)


@router.post("/{project_id}/images", status_code=201)
async def upload_images(
    project_id: str,
    user: CurrentUser,
    services: AppServices,
    files: Annotated[list[UploadFile], File(description="One or more images (PNG, JPEG, TIFF, BMP)")],
    segmentation: Annotated[str | None, Form(description='JSON: {"<file name>": [polygon, ...]}')] = None,
) -> dict:
    polygons = _parse_segmentation(segmentation)
    uploads = [Upload(name=file.filename or "image", data=await file.read()) for file in files]
    rows = await services.add_images(user.id, project_id, uploads, polygons)
    counts = {name: len(shapes) for name, shapes in polygons.items()}
    return {"images": [image_view(row, counts.get(upload.name, 0)) for row, upload in zip(rows, uploads, strict=True)]}


@router.put("/{project_id}/images/{image_id}/segmentation")
async def set_segmentation(project_id: str, image_id: str, body: SegmentationRequest, user: CurrentUser,
                           services: AppServices) -> dict:
    count = await services.set_segmentation(user.id, project_id, image_id, body.polygons)
    return {"success": True, "imageId": image_id, "polygonCount": count}


@router.get("/{project_id}/shares")
async def list_shares(project_id: str, user: CurrentUser, services: AppServices) -> dict:
    return {"shares": [user_view(row) for row in await services.shares(user.id, project_id)]}


@router.post("/{project_id}/shares", status_code=201)
async def share(project_id: str, body: ShareRequest, user: CurrentUser, services: AppServices) -> dict:
    other = await services.share(user.id, project_id, body.email)
    return {"success": True, "user": {"id": other.id, "email": other.email}}


@router.delete("/{project_id}/shares/{user_id}", status_code=204)
async def unshare(project_id: str, user_id: str, user: CurrentUser, services: AppServices) -> Response:
    await services.unshare(user.id, project_id, user_id)
    return Response(status_code=204)


def _parse_segmentation(raw: str | None) -> dict[str, list[PolygonIn]]:
    if raw is None or not raw.strip():
        return {}
    try:
        return _SEGMENTATION.validate_python(json.loads(raw))
    except json.JSONDecodeError as error:
        raise BadRequest("segmentation is not valid JSON.", field="segmentation") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(["segmentation", *(str(part) for part in first["loc"])])
        raise BadRequest(f"{where}: {first['msg']}", field="segmentation") from error
