"""Which label image belongs to which image: by stem, the way segmentation tools name their output.

Kept apart from `labels.py` so that clients can match files without importing the tracing stack
(scikit-image and SciPy take seconds to import).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: what tools append to an image's stem for its labels (Cellpose's `<stem>_cp_masks.png`, …)
SUFFIXES = ("_cp_masks", "_masks", "_mask", "_labels", "_label", "_seg")


def match_labels(image_names: Iterable[str], label_names: Iterable[str]) -> dict[str, str]:
    """Label file name -> image name, by stem (the image's stem, or it followed by one of `SUFFIXES`)."""
    by_stem: dict[str, str] = {}
    for name in image_names:
        by_stem.setdefault(Path(name).stem, name)
    matched: dict[str, str] = {}
    for label_name in label_names:
        stem = Path(label_name).stem
        candidates = [stem] + [stem[: -len(suffix)] for suffix in SUFFIXES if stem.endswith(suffix)]
        for candidate in candidates:
            if candidate in by_stem:
                matched[label_name] = by_stem[candidate]
                break
    return matched
