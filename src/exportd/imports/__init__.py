"""Bringing a user's own data in: images, with polygons from a COCO file or instance label images.

    batch.py   one upload request checked, all or nothing, before anything is stored
    coco.py    COCO instances files to polygons (polygons as they are, RLE masks traced)
    labels.py  instance label images (8/16/32-bit PNG, TIFF) read and traced
    matching.py  which label image belongs to which image (no tracing stack: clients import it)
    trace.py   labels to polygons with holes (scikit-image marching squares)
"""
