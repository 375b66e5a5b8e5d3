"""Turning upstream model files into the ones the project loads (run once, by hand; the results
are bundled in ``models/weights/`` or resolved through the manifest)."""
