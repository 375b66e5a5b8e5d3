"""Evaluation of the edge pipeline: scenario videos built from labelled faces with exact ground
truth, scoring of the pipeline against them, and benchmarks of the detector, the age/gender
models and speed. Nothing here runs on a device; the pipeline does not import it.
"""
