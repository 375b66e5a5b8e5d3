"""Which age/gender models the edge loads, and the licence check that guards the choice.

Weights inherit the terms of their training data: those trained on UTKFace or IMDB-Wiki (the
models trained here, FaceRes, face-api) are non-commercial whatever their own licence says. The
default stays on models that may be used commercially (the CC0 Cydral pair, chosen by
measurement among those; models/cards/README.md); selecting anything else needs ``allow_noncommercial_models = true`` in the configuration, so that the choice is
explicit and visible in the file.
"""

from footfall.contract.vocab import ModelRole
from models.manifest import Manifest, ModelSpec, load_manifest

DEFAULT_GENDER_MODEL = "cydral-gender"
DEFAULT_AGE_MODEL = "cydral-age"


class LicenceError(ValueError):
    """A selected model may not be used the way the configuration says."""


def check_selection(
    gender_model: str,
    age_model: str,
    allow_noncommercial_models: bool,
    manifest: Manifest | None = None,
) -> tuple[ModelSpec, ModelSpec]:
    """The two manifest entries, after checking their roles and licences."""
    manifest = manifest or load_manifest()
    specs = []
    for key, name, role in (
        ("gender_model", gender_model, ModelRole.GENDER),
        ("age_model", age_model, ModelRole.AGE),
    ):
        try:
            spec = manifest.get(name)
        except KeyError as exc:
            raise LicenceError(f"classifier.{key}: {exc.args[0]}") from None
        if spec.role is not role:
            raise LicenceError(
                f"classifier.{key}: model {name!r} is a {spec.role.value} model, not {role.value}"
            )
        if not spec.commercial_use and not allow_noncommercial_models:
            raise LicenceError(
                f"classifier.{key}: model {name!r} may not be used commercially "
                f"({spec.licence}; trained on {spec.training_data or 'unknown data'}); set "
                "classifier.allow_noncommercial_models = true only for non-commercial research"
            )
        specs.append(spec)
    return specs[0], specs[1]
