"""What explains an export: `documentation/README.md` and `metadata.json`.

Both describe the ZIP as it was actually produced, so they are written last,
from the entries already in the archive.
"""

from __future__ import annotations

from collections import Counter

from exportd import __version__
from exportd.domain.options import ExportOptions
from exportd.export.archive import ArchiveWriter
from exportd.export.formats import writer_for
from exportd.export.source import ProjectSnapshot

README_PATH = "documentation/README.md"
METADATA_PATH = "metadata.json"

_FOLDERS = {
    "images/": "the original images, as uploaded",
    "visualizations/": "each image with its polygons drawn on it",
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
    ]
    if "coco" in options.annotation_formats:
        lines.append(
            "- COCO: one annotation per cell. COCO polygons cannot carry holes, so a cell"
            " with holes is an uncompressed RLE mask (`iscrowd` 0) of the cell minus its holes."
        )
    lines.append(f"- `{METADATA_PATH}` lists the options as sent, and any warnings.")
    archive.write_text(README_PATH, "\n".join(lines) + "\n")


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


def polygon_counts(project: ProjectSnapshot) -> tuple[int, int]:
    """(cells, holes) over the project's images."""
    kinds = Counter(p.kind for image in project.images for p in image.polygons)
    return kinds["external"], kinds["internal"]


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
