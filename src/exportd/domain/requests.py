"""What clients send, validated: accounts, segmentations and export requests."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from exportd.domain.limits import (
    MAX_CLASS_NAME,
    MAX_POINTS_PER_IMAGE,
    MAX_POINTS_PER_POLYGON,
    MAX_POLYGONS_PER_IMAGE,
    printable,
)
from exportd.domain.options import ExportOptions


def _email(value: str) -> str:
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value or domain.startswith(".") or domain.endswith("."):
        raise ValueError("is not a valid email address")
    return value


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email),
                  WithJsonSchema({"type": "string", "format": "email", "maxLength": 320})]


class _Request(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Credentials(_Request):
    email: Email
    password: str = Field(min_length=8, max_length=256)


class LoginRequest(_Request):
    email: Email
    password: str = Field(max_length=256)


class ProjectRequest(_Request):
    name: str = Field(min_length=1, max_length=200)


class ShareRequest(_Request):
    email: Email


def _finite_point(point: list[float]) -> list[float]:
    if not all(math.isfinite(c) for c in point):
        raise ValueError("coordinates must be finite numbers")
    return point


def _printable(text: str) -> str:
    if not printable(text):
        raise ValueError("must be printable text, without control characters")
    return text


Point = Annotated[list[float], Field(min_length=2, max_length=2), AfterValidator(_finite_point)]


class PolygonIn(_Request):
    """One polygon. Whether its points lie near the image is checked against the image (`segmentation.py`)."""

    id: str | None = Field(None, min_length=1, max_length=36)
    type: Literal["external", "internal"]
    points: list[Point] = Field(min_length=3, max_length=MAX_POINTS_PER_POLYGON)
    parent_id: str | None = Field(None, max_length=36)
    class_name: Annotated[str, Field(min_length=1, max_length=MAX_CLASS_NAME), AfterValidator(_printable)] = "cell"

    @model_validator(mode="after")
    def _three_distinct_points(self) -> PolygonIn:
        if len({(x, y) for x, y in self.points}) < 3:
            raise ValueError("points must hold at least 3 distinct points")
        return self


def _bounded_image(polygons: list[PolygonIn]) -> list[PolygonIn]:
    total = sum(len(polygon.points) for polygon in polygons)
    if total > MAX_POINTS_PER_IMAGE:
        raise ValueError(f"an image may hold at most {MAX_POINTS_PER_IMAGE} points in all, not {total}")
    return polygons


#: the polygons of one image
ImagePolygons = Annotated[list[PolygonIn], Field(max_length=MAX_POLYGONS_PER_IMAGE), AfterValidator(_bounded_image)]


IMAGE_POLYGONS: TypeAdapter[list[PolygonIn]] = TypeAdapter(ImagePolygons)


class SegmentationRequest(_Request):
    polygons: ImagePolygons


class ExportRequest(_Request):
    options: ExportOptions = ExportOptions()
    project_name: str | None = Field(None, min_length=1, max_length=200)
