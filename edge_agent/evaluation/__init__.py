"""Evaluation of the edge pipeline: scenario videos built from labelled faces with exact ground
truth, scoring of the pipeline against them, and benchmarks of the detector, the age/gender
models and speed. Nothing here runs on a device; the pipeline does not import it.

- :mod:`.scenario` — ``ScenarioSpec`` (the knobs), the plan, the renderer, ``GroundTruth``;
- :mod:`.compositing` — drawing one person (body, head, face chip or back of the head);
- :mod:`.seed` — the seed-style pipeline (SSD, centroid tracker, first mature face);
- :mod:`.score` — the matching rule and per-person scores (motmetrics for id switches);
- :mod:`.evaluate` — running pipelines over scenarios and real clips;
- :mod:`.suite` — the standard suite, JSON and markdown;
- :mod:`.detector_bench`, :mod:`.agegender_bench` — WIDER FACE and UTKFace benchmarks;
- :mod:`.cli` — ``footfall-agent eval ...``.

Results live in ``edge_agent/evaluation/results/``; speed and memory in ``tests/bench/results/``.
"""
