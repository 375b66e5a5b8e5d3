"""Training, export, evaluation and site fine-tuning of the age/gender models.

PyTorch is imported lazily, only by the modules that train or export, so the edge agent and the
aggregator never need it; :func:`require_torch` turns its absence into one clear error.
"""

TRAIN_EXTRA_HINT = (
    "PyTorch is not installed: install the 'train' extra "
    "(pip install -e '.[train]', which pins the CPU build torch==2.13.0)"
)


class TrainingError(Exception):
    """A training, export or evaluation step that cannot go on; the message says why."""
