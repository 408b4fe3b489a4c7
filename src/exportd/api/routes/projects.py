"""Projects, their images and segmentations, and shares."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import TypeAdapter, ValidationError

from exportd.api.deps import AppServices, CurrentUser
from exportd.domain.errors import BadRequest
from exportd.domain.requests import ImagePolygons, PolygonIn, ProjectRequest, SegmentationRequest, ShareRequest
from exportd.services import Upload
from exportd.thumbnails import etag
from exportd.views import image_view, project_view, user_view

router = APIRouter(prefix="/projects", tags=["projects"])

_SEGMENTATION = TypeAdapter(dict[str, ImagePolygons])


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
    coco: Annotated[UploadFile | None, File(
        description="A COCO instances file; its images are matched to `files` by file name")] = None,
    masks: Annotated[list[UploadFile] | None, File(
        description="Instance label images (8/16/32-bit PNG or TIFF, 0 the background), matched to `files` "
                    "by stem (also `<stem>_masks`, `<stem>_cp_masks`, …)")] = None,
    class_name: Annotated[str, Form(alias="className", min_length=1, max_length=100,
                                    description="The class of the cells traced from `masks`")] = "cell",
) -> dict:
    """Upload images, optionally with their polygons (JSON, a COCO file, or label images); all or nothing.

    An image the project already holds (same name, same content) is skipped and listed in `skipped`.
    A file that cannot be used makes the request a 400 whose `rejected` lists every such file with
    its reason; nothing is stored then.
    """
    polygons = _parse_segmentation(segmentation)
    imported = await services.import_images(
        user.id, project_id, [await _upload(file, "image") for file in files], segmentation=polygons,
        coco=await _upload(coco, "coco.json") if coco is not None else None,
        masks=[await _upload(mask, "mask") for mask in masks or []], class_name=class_name)
    return {"images": [image_view(row, cells) for row, cells in imported.images], "skipped": imported.skipped,
            "cells": imported.cells, "warnings": imported.warnings}


async def _upload(file: UploadFile, default: str) -> Upload:
    return Upload(name=file.filename or default, data=await file.read())


@router.get("/{project_id}/images/{image_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG at most 160 px on a side"},
                       304: {"description": "Not modified (If-None-Match)"}})
async def thumbnail(project_id: str, image_id: str, request: Request, user: CurrentUser,
                    services: AppServices) -> Response:
    """A small preview of an image, for pickers. An image never changes under its id, so the
    answer carries an ETag and may be kept privately for a week."""
    path = await services.thumbnail(user.id, project_id, image_id)  # 404 unless the caller sees it
    headers = {"ETag": etag(image_id), "Cache-Control": "private, max-age=604800, immutable"}
    if etag(image_id) in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="image/jpeg", headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


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
