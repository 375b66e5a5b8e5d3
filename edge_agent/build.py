"""Wiring: from a validated configuration and the model resolver to a detector and a
classifier. Model references in events come from the manifest, so they name exactly the
files that were loaded."""

import logging
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.vision.detection import FaceDetector, SsdDetector, YuNetDetector
from edge_agent.vision.person_detection import NanoDetDetector
from edge_agent.vision.settings import (
    ClassifierSettings,
    DetectorKind,
    DetectorSettings,
    PersonSettings,
)
from footfall.contract import ModelRef
from models.assets import AssetError, ModelResolver
from models.manifest import ModelSpec
from models.runtime.classifier import FaceClassifier, OnnxFaceClassifier, OnnxHead, head_for

log = logging.getLogger(__name__)


class BuildError(Exception):
    """A model that cannot be loaded; the message names it and why."""


def resolver_for(config: AgentConfig, models_dir: Path | None = None) -> ModelResolver:
    return ModelResolver(
        models_dir=models_dir or config.models.dir,
        cache_dir=config.models.cache_dir,
        allow_download=config.models.allow_download,
    )


def model_ref(resolver: ModelResolver, name: str) -> ModelRef:
    spec = resolver.manifest.get(name)
    return ModelRef(role=spec.role, name=spec.name, version=spec.version)


def _resolve(resolver: ModelResolver, name: str) -> Path:
    try:
        return resolver.resolve(name)
    except (AssetError, KeyError) as exc:
        raise BuildError(str(exc).strip("'\"")) from None


def build_detector(settings: DetectorSettings, resolver: ModelResolver) -> FaceDetector:
    if settings.kind is DetectorKind.SSD:
        return SsdDetector(
            _resolve(resolver, "res10-ssd"),
            _resolve(resolver, "res10-ssd-config"),
            score_threshold=settings.score_threshold,
            model=model_ref(resolver, "res10-ssd"),
        )
    return YuNetDetector(
        _resolve(resolver, settings.yunet_model),
        input_width=settings.input_width,
        score_threshold=settings.score_threshold,
        nms_threshold=settings.nms_threshold,
        model=model_ref(resolver, settings.yunet_model),
    )


def build_person_detector(settings: PersonSettings, resolver: ModelResolver) -> FaceDetector:
    """NanoDet-m for ``mode = "person"``; it returns body boxes through the detector protocol."""
    try:
        return NanoDetDetector(
            _resolve(resolver, "nanodet-m"),
            input_width=settings.input_width,
            score_threshold=settings.score_threshold,
            nms_threshold=settings.nms_threshold,
            model=model_ref(resolver, "nanodet-m"),
        )
    except ImportError:
        raise BuildError(
            "person mode needs onnxruntime: pip install 'footfall[edge]' (or set mode = \"face\")"
        ) from None


def build_classifier(settings: ClassifierSettings, resolver: ModelResolver) -> FaceClassifier:
    """The configured gender and age models, fed and read as their manifest entries say."""
    gender, age = resolver.model(settings.gender_model), resolver.model(settings.age_model)

    def head(spec: ModelSpec) -> OnnxHead:
        try:
            return head_for(spec, _resolve(resolver, spec.name))
        except ValueError as exc:
            raise BuildError(str(exc)) from None

    return OnnxFaceClassifier(
        head(gender),
        head(age),
        flip_average=settings.flip_average,
        models=(model_ref(resolver, gender.name), model_ref(resolver, age.name)),
        age_temperature=age.confidence_temperature,
    )
