"""The trained weights that ship in models/weights/: verified by sha256, loadable by cv2.dnn,
fed like the Cydral models, and refused for commercial use."""

from pathlib import Path

import numpy as np

from models.assets import Location, ModelResolver, bundled_dir
from models.faces import AGE_BIN_YEARS, DnnAgeGender
from models.manifest import load_manifest


def test_every_bundled_model_is_found_and_verified(tmp_path: Path) -> None:
    resolver = ModelResolver(cache_dir=tmp_path, allow_download=False, environ={})
    bundled = [m for m in load_manifest().models if m.bundled]
    assert bundled
    for spec in bundled:
        found = resolver.verify(spec.name)
        assert found.location is Location.BUNDLED
        assert found.path == bundled_dir() / spec.file
        # Bundled or not, a model says what it was trained on and under which licence.
        assert spec.training_data and spec.licence
        if spec.role.value in ("gender", "age"):
            assert spec.input_size is not None and spec.output in {"gender", "age"}


def test_bundled_age_gender_net_answers_like_the_cydral_pair(tmp_path: Path) -> None:
    resolver = ModelResolver(cache_dir=tmp_path, allow_download=False, environ={})
    spec = load_manifest().get("utk-compact-age")
    assert spec.input_size is not None
    model = DnnAgeGender(resolver.resolve(spec.name), spec.input_size, "utk-compact")
    rng = np.random.default_rng(0)
    chips = [rng.integers(0, 255, (spec.input_size, spec.input_size, 3), dtype=np.uint8)] * 2
    preds = model.predict_chips(chips, flip=True)
    for p in preds:
        assert 0.0 <= p.p_female <= 1.0
        assert p.age_probs.shape == AGE_BIN_YEARS.shape
        assert abs(float(p.age_probs.sum()) - 1.0) < 1e-4
        assert 0.25 <= p.expected_age <= 80
