"""What explains an export: `documentation/README.md`, `documentation/metrics_guide.md`
and `metadata.json`.

The README and metadata describe the ZIP as it was actually produced, so they
are written last, from the entries already in the archive. The metrics guide
is built from the metrics' own column table, so it defines exactly the columns
the files have.
"""

from __future__ import annotations

from collections import Counter

from exportd import __version__
from exportd.domain.options import ExportOptions
from exportd.export.archive import ArchiveWriter
from exportd.export.formats import writer_for
from exportd.export.guides import guide_path
from exportd.export.metrics import IDENTITY, MEASURED, SIGNIFICANT_DIGITS, heading, unit
from exportd.export.source import ProjectSnapshot

README_PATH = "documentation/README.md"
GUIDE_PATH = "documentation/metrics_guide.md"
METADATA_PATH = "metadata.json"
#: the replaced platform's metadata file, with its keys, beside exportd's own at the root
LEGACY_METADATA_PATH = "documentation/metadata.json"

_FOLDERS = {
    "annotations/README.md": "which annotation format to use, and where each one's `QUICK_SETUP.md` is",
    LEGACY_METADATA_PATH: "the export's metadata under the replaced platform's keys",
    "images/": "the original images, as uploaded",
    "visualizations/": "each image with its cells drawn on it (`<image>_viz.png`)",
    GUIDE_PATH: "what each metric means, and its unit",
}


def write_readme(archive: ArchiveWriter, project: ProjectSnapshot, options: ExportOptions) -> None:
    """The README: what is in this ZIP, with which options, and how to read it."""
    cells, holes = polygon_counts(project)
    scale = options.pixel_to_micrometer_scale
    lines = [
        f"# {project.name}: segmentation export",
        "",
        f"Generated {archive.generated_at.isoformat()} by exportd {__version__}:"
        f" {len(project.images)} images, {cells} cells, {holes} holes.",
        "",
        "## Contents",
        "",
        "| path | contents |",
        "|---|---|",
        *_contents(archive.names + [README_PATH, METADATA_PATH], options),
        "",
        "## Options",
        "",
        f"- Original images: {'included' if options.include_original_images else 'not included'}",
        f"- Visualizations: {_visualizations(archive, options)}",
        *_style(options),
        f"- Annotation formats: {', '.join(options.annotation_formats) or 'none'}",
        f"- Metrics formats: {', '.join(options.metrics_formats) or 'none'}",
        f"- Images: {'a selection of ' if options.selected_image_ids is not None else 'all '}"
        f"{len(project.images)}",
        f"- Scale: {f'{scale} µm per pixel' if scale else 'not set; measurements are in pixels'}",
        "",
        "## Conventions",
        "",
        "- Coordinates are in pixels of the original image: origin at the top-left corner,"
        " x to the right, y down; pixel (i, j) covers [i, i+1) × [j, j+1).",
        "- A cell is an external polygon; a hole is an internal polygon whose `parentId`"
        " is the cell it lies in. Areas have holes subtracted.",
        "- Polygons with fewer than 3 points, no area or a self-intersecting outline are left out"
        f" of the annotations, metrics and visualizations, each with a warning in `{METADATA_PATH}`.",
    ]
    if "coco" in options.annotation_formats:
        lines.append(
            "- COCO: one annotation per cell. COCO polygons cannot carry holes, so a cell"
            " with holes is an uncompressed RLE mask (`iscrowd` 0) of the cell minus its holes."
            " An image's `file_name` is its name in `images/`: give `images/` as the image root."
        )
    if "yolo" in options.annotation_formats:
        lines += [
            "- YOLO: `annotations/yolo/<image stem>.txt` has one line per cell, `class x1 y1 x2 y2 …`,"
            " the outer outline divided by the image's width and height (holes cannot be expressed"
            " in this format). Class n is line n + 1 of `classes.txt` (from 0) and is named in"
            " `data.yaml`. Tools such as Ultralytics look for labels in a `labels/` folder next to"
            " `images/`: move the `.txt` files there (`mkdir labels && mv annotations/yolo/*.txt labels/`);"
            " `data.yaml` already points `train` and `val` at `images`.",
        ]
    if "masks" in options.annotation_formats:
        lines.append(
            "- Masks: `masks/<image stem>.tif` is an instance label image the size of its image (16-bit,"
            " 32-bit past 65,535 cells): 0 is the background and holes, n the pixels of cell n (the"
            " numbers of the visualizations and metrics). Cellpose and StarDist train on these."
        )
    if "geojson" in options.annotation_formats:
        lines.append(
            "- GeoJSON: `annotations/geojson/<image stem>.geojson` is a FeatureCollection of the image's"
            " cells (Polygon features with their holes, classified by class name) in pixel coordinates;"
            " in QuPath, open the image and use File > Import objects (or drag the file onto the image)."
        )
    if options.metrics_formats:
        lines.append(
            "- Metrics: one row per cell (holes subtracted), numbered as on the visualizations;"
            f" units are in the column headers. See `{GUIDE_PATH}`."
        )
    lines.append(f"- `{METADATA_PATH}` lists the options as sent, and any warnings.")
    archive.write_text(README_PATH, "\n".join(lines) + "\n")


def write_metrics_guide(archive: ArchiveWriter, options: ExportOptions) -> None:
    """The metrics guide: every column of the metrics files, with its unit and definition."""
    scale = options.pixel_to_micrometer_scale
    lines = [
        "# Metrics guide",
        "",
        "Each row of the metrics describes one cell: an external polygon with its holes",
        "(internal polygons) subtracted. Polygons with fewer than 3 points, no area or a",
        "self-intersecting outline are left out, with a warning in `metadata.json`.",
        "",
        f"Units: {_scale_sentence(scale)} Ratios have no unit. Values are given to"
        f" {SIGNIFICANT_DIGITS} significant digits.",
        "",
        "| column | unit | meaning |",
        "|---|---|---|",
        *(f"| {c.title} | {unit(c.kind, scale) or '–'} | {c.meaning} |" for c in (*IDENTITY, *MEASURED)),
        "",
        "## Notes",
        "",
        "- A is the Area column and P the Perimeter column. Circularity, Compactness, Convexity",
        "  and Sphericity use the outer perimeter P, so a hole changes A but not P.",
        "- Sphericity is 2√(πA)/P, the perimeter of the circle of area A divided by P: 1 for a circle,",
        "  √π/2 ≈ 0.886 for a square (it is the square root of Circularity).",
        "- Feret diameters are measured on the convex hull of the outline with rotating calipers.",
        "- Major and Minor Axis Length are those of the ellipse with the same second central",
        "  moments of area (scikit-image's `regionprops` definition), computed exactly from the polygon.",
        "- Lengths and areas are computed on the polygons as drawn, not on pixel masks, so they",
        "  may differ slightly from pixel-count measurements of the same cell.",
        '- `metrics.xlsx` has the sheets "Polygon Metrics" (one row per cell) and "Summary"'
        " (per image: the number of cells, the mean of each metric, and the smallest and largest"
        " Area beside the mean Area; a last row over all images). `metrics.json` has the same summary"
        " under `images` and `allImages`, with `minArea` and `maxArea`.",
        "- In `metrics.csv`, text that a spreadsheet would run as a formula (starting with"
        " `=`, `+`, `-`, `@`, a tab or a carriage return) starts with `'`.",
        "",
        "Column headers as they appear in the files: "
        + ", ".join(f"`{heading(c, scale)}`" for c in (*IDENTITY, *MEASURED)) + ".",
    ]
    archive.write_text(GUIDE_PATH, "\n".join(lines) + "\n")


def write_metadata(
    archive: ArchiveWriter,
    project: ProjectSnapshot,
    options: ExportOptions,
    *,
    job_id: str,
    warnings: list[str],
) -> None:
    """`metadata.json`: the machine-readable account of this export."""
    cells, holes = polygon_counts(project)
    archive.write_json(
        METADATA_PATH,
        {
            "exportdVersion": __version__,
            "jobId": job_id,
            "project": {"id": project.id, "name": project.name},
            "generatedAt": archive.generated_at.isoformat(),
            "options": options.to_json(),
            "imageCount": len(project.images),
            "polygonCounts": {"external": cells, "internal": holes},
            "formats": {
                group: [{"name": name, "path": writer_for(group, name).path} for name in names]
                for group, names in (
                    ("annotations", options.annotation_formats),
                    ("metrics", options.metrics_formats),
                )
            },
            "files": archive.names + [METADATA_PATH],
            "warnings": list(warnings),
        },
    )


def write_legacy_metadata(archive: ArchiveWriter, project: ProjectSnapshot, options: ExportOptions) -> None:
    """`documentation/metadata.json` as the replaced platform wrote it (`projectId, projectName,
    exportDate, imageCount, exportOptions, version`), for scripts that read it; `metadata.json` at
    the root is exportd's fuller account."""
    archive.write_json(
        LEGACY_METADATA_PATH,
        {
            "projectId": project.id,
            "projectName": project.name,
            "exportDate": archive.generated_at.isoformat(),
            "imageCount": len(project.images),
            "exportOptions": options.to_json(),
            "version": __version__,
        },
    )


def polygon_counts(project: ProjectSnapshot) -> tuple[int, int]:
    """(cells, holes) over the project's images."""
    kinds = Counter(p.kind for image in project.images for p in image.polygons)
    return kinds["external"], kinds["internal"]


def _scale_sentence(scale: float | None) -> str:
    if scale:
        return f"the scale is {scale} µm per pixel, so lengths are in µm (px × {scale}) and areas in µm² (px² × {scale}²)."
    return "no scale was set, so lengths are in pixels (px) and areas in px²."


def _style(options: ExportOptions) -> list[str]:
    """The drawing options, when visualizations were requested."""
    if not options.include_visualizations:
        return []
    style = options.visualization_options
    numbers = f"shown, {style.font_size} px high" if style.show_numbers else "not shown"
    return [
        f"  - Cell outlines and fills: {style.polygon_colors.external}; holes: {style.polygon_colors.internal}",
        f"  - Stroke width: {style.stroke_width} px; fill opacity (`transparency`): {style.transparency}",
        f"  - Cell numbers: {numbers}",
    ]


def _visualizations(archive: ArchiveWriter, options: ExportOptions) -> str:
    if not options.include_visualizations:
        return "not requested"
    if any(name.startswith("visualizations/") for name in archive.names):
        return "included"
    return f"requested, but not produced (see the warnings in `{METADATA_PATH}`)"


def _contents(names: list[str], options: ExportOptions) -> list[str]:
    """One table row per known file or folder, folders with their file count."""
    described = dict(_FOLDERS)
    for group, formats in (("annotations", options.annotation_formats), ("metrics", options.metrics_formats)):
        for name in formats:
            writer = writer_for(group, name)
            described[writer.path] = writer.title
            if group == "annotations" and not writer.path.endswith("/"):  # a folder's guide is counted in it
                described[guide_path(writer)] = f"how to use the {writer.title}"
    described[README_PATH] = "this file"
    described[METADATA_PATH] = "what was exported, with which options, and any warnings"
    counts = Counter(_owner(name, described) for name in names)
    rows = []
    for path, count in counts.items():
        label = f"`{path}` ({count} files)" if path.endswith("/") else f"`{path}`"
        rows.append(f"| {label} | {described.get(path, '')} |")
    return rows


def _owner(name: str, described: dict[str, str]) -> str:
    """The described path a ZIP entry belongs to: itself, or the deepest folder holding it."""
    folders = [key for key in described if key.endswith("/") and name.startswith(key)]
    return name if name in described or not folders else max(folders, key=len)
