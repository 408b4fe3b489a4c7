"""What clients send, validated: accounts, segmentations and export requests."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel

from exportd.domain.options import ExportOptions

MAX_POINTS = 100_000
MAX_POLYGONS = 10_000


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


Point = Annotated[list[float], Field(min_length=2, max_length=2), AfterValidator(_finite_point)]


class PolygonIn(_Request):
    id: str | None = Field(None, min_length=1, max_length=36)
    type: Literal["external", "internal"]
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS)
    parent_id: str | None = Field(None, max_length=36)
    class_name: str = Field("cell", min_length=1, max_length=100)


class SegmentationRequest(_Request):
    polygons: list[PolygonIn] = Field(max_length=MAX_POLYGONS)


class ExportRequest(_Request):
    options: ExportOptions = ExportOptions()
    project_name: str | None = Field(None, min_length=1, max_length=200)
