"""How to use the annotations of this export: `annotations/README.md` and a
`QUICK_SETUP.md` beside each annotation format (COCO into CVAT, YOLO into a
YOLOv8 training run, the JSON format's fields, GeoJSON into QuPath, masks into
Cellpose or StarDist).

They are written for the ZIP at hand, after the formats themselves: every path
they name is an entry or folder of this ZIP (an example image is one of its own
images), and what is not in it (say, the original images) is said so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from exportd.domain.options import ExportOptions
from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.formats import FormatWriter, writer_for
from exportd.export.source import ProjectSnapshot

README_PATH = "annotations/README.md"
GUIDE_NAME = "QUICK_SETUP.md"


@dataclass(frozen=True, slots=True)
class Layout:
    """What the guides may point at: the ZIP as written so far, and the project's names."""

    project: ProjectSnapshot
    options: ExportOptions
    entries: frozenset[str]
    example: str | None  #: one image's file name in `images/`, e.g. "spheroid_01.png"
    classes: dict[str, int]  #: class name → cells

    @property
    def images_included(self) -> bool:
        return any(name.startswith("images/") for name in self.entries)

    def images_sentence(self) -> str:
        if self.images_included:
            return f"The images are in `images/` ({len(self.project.images)} files, e.g. `images/{self.example}`)."
        return ("The original images are not in this export: put the project's images, under the same file"
                f" names (e.g. `{self.example}`), in a folder `images/` next to `annotations/`.")


def folder_of(writer: FormatWriter) -> str:
    """The folder a format writes into: `annotations/coco/` for `annotations/coco/annotations.json`."""
    return writer.path if writer.path.endswith("/") else f"{PurePosixPath(writer.path).parent}/"


def guide_path(writer: FormatWriter) -> str:
    return folder_of(writer) + GUIDE_NAME


def write_annotation_guides(archive: ArchiveWriter, project: ProjectSnapshot, options: ExportOptions) -> None:
    """The annotations README and one quick-setup guide per exported annotation format."""
    names = image_file_names(project.images)
    classes = Counter(p.class_name for image in project.images for p in image.externals())
    layout = Layout(project, options, frozenset(archive.names),
                    names[project.images[0].id] if project.images else None, dict(classes))
    writers = [writer_for("annotations", name) for name in options.annotation_formats]
    for writer in writers:
        guide = GUIDES.get(writer.name)
        if guide is not None:
            archive.write_text(guide_path(writer), guide(writer, layout))
    archive.write_text(README_PATH, _readme(writers, layout))


def _readme(writers: list[FormatWriter], layout: Layout) -> str:
    scale = layout.options.pixel_to_micrometer_scale
    rows = [f"| {w.title} | `{w.path}` | `{guide_path(w)}` |" for w in writers if w.name in GUIDES]
    uses = [USES[w.name] for w in writers if w.name in USES]
    classes = ", ".join(f"{name} ({count} cells)" for name, count in layout.classes.items()) or "none"
    lines = [
        f"# Annotations of {layout.project.name}",
        "",
        f"The cells of {len(layout.project.images)} images in {len(writers)} annotation"
        f" format{'s' if len(writers) != 1 else ''}. Each format's folder has a `{GUIDE_NAME}`"
        " with the steps to load it.",
        "",
        "| format | path | quick setup |",
        "|---|---|---|",
        *rows,
        "",
        "## Images, coordinates and classes",
        "",
        f"- {layout.images_sentence()}",
        "- Coordinates are pixels of the original image: origin at the top-left corner, x to the right,"
        " y down." + (f" (The metrics use the scale {scale} µm per pixel; the annotations stay in pixels.)"
                      if scale else ""),
        f"- Classes: {classes}.",
        "- A cell is an external polygon; its holes are internal polygons. Each format keeps holes as it"
        " can: COCO as RLE masks with the holes empty, JSON as internal polygons linked to their cell,"
        " GeoJSON as interior rings, masks as background; YOLO lines carry the outer outline only.",
        "",
        "## Which one to use",
        "",
        *(f"- {use}" for use in uses),
        "",
        "`documentation/README.md` describes the whole export; `metadata.json` lists every file.",
    ]
    return "\n".join(lines) + "\n"


USES = {
    "coco": "Reviewing or correcting the cells in CVAT (or another annotation tool), or training with"
            " tools that read COCO: `annotations/coco/`.",
    "yolo": "Training a YOLOv8 segmentation model: `annotations/yolo/`.",
    "json": "Your own analysis scripts: `annotations/json/` (every polygon with its area, perimeter,"
            " bounding box and centroid).",
    "geojson": "Looking at the cells in QuPath: `annotations/geojson/`.",
    "masks": "Training Cellpose or StarDist: `masks/`.",
}


def _coco(writer: FormatWriter, layout: Layout) -> str:
    classes = ", ".join(f"`{name}`" for name in layout.classes) or "`cell`"
    return "\n".join([
        "# COCO: quick setup",
        "",
        f"`{writer.path}` is a COCO instance-segmentation file: one annotation per cell, a polygon, or"
        " an RLE mask with the holes empty when the cell has holes (`iscrowd` is 0 for both). Each"
        " annotation has `attributes {type, has_holes}`. An image's `file_name` is its name in"
        " `images/`, so give `images/` as the image root.",
        "",
        layout.images_sentence(),
        "",
        "## Into CVAT",
        "",
        f"1. Create a project or task with the labels {classes} (type: any, or polygon and mask).",
        "2. Upload the images of `images/` to the task, as they are: their names must match `file_name`.",
        '3. In the task: Actions → Upload annotations, format "COCO 1.0", file'
        f" `{writer.path}`.",
        "4. Cells with holes arrive as masks, the others as polygons; `type` and `has_holes` show as"
        " attributes of each shape.",
        "",
        "## In Python (pycocotools)",
        "",
        "```python",
        "from pycocotools.coco import COCO",
        "",
        f'coco = COCO("{writer.path}")',
        "for image in coco.loadImgs(coco.getImgIds()):",
        '    path = "images/" + image["file_name"]',
        '    masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))]',
        "```",
        "",
    ])


def _yolo(writer: FormatWriter, layout: Layout) -> str:
    folder = folder_of(writer)
    example = f"`{folder}{file_stem(layout.example)}.txt`" if layout.example else "one file per image"
    return "\n".join([
        "# YOLO segmentation: quick setup",
        "",
        f"`{folder}` holds one label file per image ({example}), `{folder}classes.txt` and"
        f" `{folder}data.yaml`. Each line is one cell: `class x1 y1 x2 y2 …`, its outline divided by"
        " the image's width and height (segmentation lines, not bounding boxes; holes cannot be"
        " expressed). An image without cells has an empty file.",
        "",
        layout.images_sentence(),
        "",
        "## Train a YOLOv8 segmentation model (Ultralytics)",
        "",
        "Ultralytics finds an image's labels in `labels/` beside `images/`, and reads relative paths"
        " in `data.yaml` against the `path` it names. In the folder where you unpacked this ZIP:",
        "",
        "```bash",
        "mkdir -p labels && cp annotations/yolo/*.txt labels/",
        f'{{ echo "path: $PWD"; cat {folder}data.yaml; }} > data.yaml',
        "pip install ultralytics",
        "yolo segment train data=data.yaml model=yolov8n-seg.pt epochs=100 imgsz=640",
        "```",
        "",
        "`data.yaml` uses every image for training and validation; split them into training and"
        " validation folders (with their labels alike) for a real evaluation.",
        "",
    ])


def _json(writer: FormatWriter, layout: Layout) -> str:
    return "\n".join([
        "# JSON: quick setup",
        "",
        f"`{writer.path}` keeps every polygon as stored, holes included. Its layout is the replaced"
        " platform's `segmentation_data.json`, field for field, so scripts written for it read it as"
        " they are; exportd's own fields sit beside them.",
        "",
        "| field | meaning |",
        "|---|---|",
        "| `metadata` | `version`, `created`, `imageCount`, `format` (\"custom_json\"), and exportd's"
        " `project`, `pixelToMicrometerScale`, `exporter` |",
        "| `images[].id`, `index`, `filename` | the image's id, its number from 1, its name in `images/` |",
        "| `images[].dimensions` | `{width, height}` in pixels |",
        "| `segmentation.cellCount` | the number of external polygons |",
        "| `segmentation.timestamp` | when this export was made |",
        "| `segmentation.polygons.external[]` | cells: `id` (from 1 in this list), `points` (`{x, y}`"
        " in pixels), `area` (px², the outline's own), `perimeter` (px), `boundingBox`"
        " `[x, y, width, height]`, `centroid` `{x, y}`; exportd adds `polygonId`, `className` and"
        " `netArea` (minus its holes, as in the metrics) |",
        "| `segmentation.polygons.internal[]` | holes: `id`, `points`, `area`, `perimeter`; exportd"
        " adds `polygonId`, `className`, `parentId` (the cell's `polygonId`) and `parent` (the cell's"
        " `id`) |",
        "| `segmentation.statistics` | `totalExternalPolygons`, `totalInternalPolygons`, `totalArea`"
        " (the cells' area minus their holes, px²) |",
        "",
        "## In Python",
        "",
        "```python",
        "import json",
        "",
        f'with open("{writer.path}", encoding="utf-8") as f:',
        "    data = json.load(f)",
        'for image in data["images"]:',
        '    cells = image["segmentation"]["polygons"]["external"]',
        '    print(image["filename"], len(cells), sum(cell["netArea"] for cell in cells))',
        "```",
        "",
    ])


def _geojson(writer: FormatWriter, layout: Layout) -> str:
    folder = folder_of(writer)
    example = f"`{folder}{file_stem(layout.example)}.geojson`" if layout.example else "one file per image"
    return "\n".join([
        "# GeoJSON: quick setup",
        "",
        f"`{folder}` holds one FeatureCollection per image ({example}): one Polygon feature per cell,"
        " its holes as interior rings, in pixel coordinates of the image (origin top-left, y down), each"
        " with a QuPath classification by class name.",
        "",
        layout.images_sentence(),
        "",
        "## Into QuPath (0.4 or later)",
        "",
        "1. Open the image in QuPath.",
        "2. Drag its `.geojson` file onto the viewer (or File → Import objects from file).",
        "3. The cells appear as annotations named `Cell <n>`, numbered as on the visualizations and in"
        " the metrics, classified by class name.",
        "",
        "## In Python",
        "",
        "```python",
        "import json",
        "from shapely.geometry import shape",
        "",
        f'with open("{folder}{file_stem(layout.example or "image.png")}.geojson", encoding="utf-8") as f:',
        '    cells = [shape(feature["geometry"]) for feature in json.load(f)["features"]]',
        "```",
        "",
    ])


def _masks(writer: FormatWriter, layout: Layout) -> str:
    folder = folder_of(writer)
    example = f"`{folder}{file_stem(layout.example)}.tif`" if layout.example else "one file per image"
    return "\n".join([
        "# Instance label masks: quick setup",
        "",
        f"`{folder}` holds one single-channel TIFF per image ({example}), the size of the image: 0 is"
        " the background and each cell's pixels hold its number (as on the visualizations and in the"
        " metrics' `Polygon` column); holes are background. 16-bit, or 32-bit past 65,535 cells.",
        "",
        layout.images_sentence(),
        "",
        "## Train Cellpose",
        "",
        "Cellpose reads an image and its mask from one folder, the mask named `<image>_masks.tif`:",
        "",
        "```bash",
        "mkdir -p cellpose",
        "for image in images/*; do",
        '  name=$(basename "$image"); stem="${name%.*}"',
        f'  cp "$image" cellpose/ && cp "{folder}$stem.tif" "cellpose/${{stem}}_masks.tif"',
        "done",
        "python -m cellpose --train --dir cellpose --mask_filter _masks --pretrained_model cyto3 --n_epochs 100",
        "```",
        "",
        "## StarDist, or your own code",
        "",
        "```python",
        "import tifffile",
        "",
        f'labels = tifffile.imread("{folder}{file_stem(layout.example or "image.png")}.tif")'
        "  # (height, width) integer labels",
        "```",
        "",
        "StarDist trains on lists of images and such label arrays (`StarDist2D.train(X, Y, …)`).",
        "",
    ])


GUIDES: dict[str, Callable[[FormatWriter, Layout], str]] = {
    "coco": _coco, "yolo": _yolo, "json": _json, "geojson": _geojson, "masks": _masks,
}
