"""Building one export ZIP: the pipeline, the archive and one module per format."""
