"""Export options, as a client sends them (camelCase) and as the pipeline reads them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

AnnotationFormat = Literal["coco", "yolo", "json", "masks", "geojson"]
MetricsFormat = Literal["excel", "csv", "json"]

HEX_COLOR = r"^#[0-9a-fA-F]{6}$"
SCALE_MIN, SCALE_MAX = 0.001, 1000.0  #: µm per pixel


class _Options(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )


class PolygonColors(_Options):
    external: str = Field("#FF0000", pattern=HEX_COLOR)  #: cell outlines
    internal: str = Field("#0000FF", pattern=HEX_COLOR)  #: holes


class VisualizationOptions(_Options):
    """How the overlays look. The defaults are the replaced platform's: red cells, blue holes,
    2 px strokes, numbers 32 px high, fills at 0.3 opacity. The API accepts wider ranges than
    the dialog's sliders (`DIALOG_CONTROLS`)."""

    show_numbers: bool = True
    polygon_colors: PolygonColors = PolygonColors()
    stroke_width: int = Field(2, ge=1, le=50)
    font_size: int = Field(32, ge=6, le=200)
    transparency: float = Field(0.3, ge=0.0, le=1.0)


class ExportOptions(_Options):
    """What one export contains. Unknown or ill-typed fields are rejected by name.

    The defaults are what a user expects from "export everything": the originals,
    their visualizations and the documentation, COCO and JSON annotations, and
    the metrics as an Excel workbook.
    """

    include_original_images: bool = True
    include_visualizations: bool = True
    include_documentation: bool = True
    visualization_options: VisualizationOptions = VisualizationOptions()
    annotation_formats: list[AnnotationFormat] = ["coco", "json"]
    metrics_formats: list[MetricsFormat] = ["excel"]
    selected_image_ids: list[str] | None = None
    pixel_to_micrometer_scale: float | None = Field(None, ge=SCALE_MIN, le=SCALE_MAX)

    @field_validator("annotation_formats", "metrics_formats", "selected_image_ids")
    @classmethod
    def _no_duplicates(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _something_selected(self) -> ExportOptions:
        if not (self.include_original_images or self.include_visualizations or self.include_documentation
                or self.annotation_formats or self.metrics_formats):
            raise ValueError("nothing is selected: the export would hold no images, visualizations, "
                             "documentation, annotations or metrics")
        return self

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


#: the browser dialog's sliders, in the options' own units (its fill slider shows percent)
DIALOG_CONTROLS: dict[str, dict[str, float]] = {
    "strokeWidth": {"min": 1, "max": 10, "step": 1},
    "fontSize": {"min": 10, "max": 50, "step": 2},
    "transparency": {"min": 0.0, "max": 1.0, "step": 0.1},
    "pixelToMicrometerScale": {"min": SCALE_MIN, "max": SCALE_MAX},
}


def dialog_defaults() -> dict:
    """What `GET /api/export/defaults` returns: the default options and the dialog's control ranges."""
    return {"options": ExportOptions().to_json(), "controls": DIALOG_CONTROLS}
