"""``footfall-aggregator demo``: the whole product on a laptop in one command.

Sample clips (see ``demo_samples.toml``) play the candidate spots of one demo site; they run
through the real pipeline into the embedded aggregator, and the site workbook comes out. The same
path serves real clips through ``footfall-aggregator survey``.
"""

import tomllib
from datetime import date, datetime, time
from importlib.resources import files
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.clips import ClipSpec
from edge_agent.config import AgentConfig
from edge_agent.vision.settings import PipelineMode
from models.assets import AssetError, AssetResolver
from models.manifest import AssetSpec

SAMPLES_DIR_ENV = "FOOTFALL_SAMPLES_DIR"
DEMO_SITE = "demo-high-street"
DEMO_SITE_NAME = "Demo high street"
DEMO_TIMEZONE = "Europe/Berlin"
DEMO_DAY = date(2026, 5, 4)


class SampleSpec(AssetSpec):
    spot: str = Field(description="Spot the clip plays in the demo")
    start: time = Field(description="Local time of the clip's first frame on the demo day")
    detector_width: int | None = Field(
        default=None,
        gt=0,
        description="Detection input width for this camera (default: the agent's)",
    )
    mode: PipelineMode = Field(
        default=PipelineMode.PERSON,
        description="The agent mode this camera would run: person for cameras that see people "
        "whole, face for close-up kiosk cameras",
    )


class SampleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: list[SampleSpec]


def load_samples() -> list[SampleSpec]:
    text = files("aggregator").joinpath("demo_samples.toml").read_text(encoding="utf-8")
    return list(SampleManifest.model_validate(tomllib.loads(text)).samples)


class SampleResolver(AssetResolver):
    kind = "sample clip"
    dir_env = SAMPLES_DIR_ENV
    cache_subdir = "samples"
    fetch_hint = " or pass --samples-dir"

    def bundled_dir(self) -> Path:
        return Path(str(files("aggregator").joinpath("samples")))


def demo_clips(
    samples_dir: Path | None, *, allow_download: bool = True
) -> tuple[list[ClipSpec], dict[str, AgentConfig], list[str]]:
    """The demo's clips, the per-clip agent configuration, and why any sample is missing."""
    samples = load_samples()
    resolver = SampleResolver(list(samples), directory=samples_dir, allow_download=allow_download)
    clips: list[ClipSpec] = []
    configs: dict[str, AgentConfig] = {}
    missing: list[str] = []
    tz = ZoneInfo(DEMO_TIMEZONE)
    for sample in samples:
        try:
            path = resolver.resolve(sample.name)
        except AssetError as exc:
            missing.append(str(exc))
            continue
        agent = f"cam-{sample.spot}"[:32]
        clips.append(
            ClipSpec(
                path=path,
                site=DEMO_SITE,
                spot=sample.spot,
                start=datetime.combine(DEMO_DAY, sample.start, tz),
                agent=agent,
            )
        )
        config = AgentConfig(site=DEMO_SITE, spot=sample.spot, agent=agent, mode=sample.mode)
        if sample.detector_width is not None:
            detector = config.detector.model_copy(update={"input_width": sample.detector_width})
            config = config.model_copy(update={"detector": detector})
        configs[sample.spot] = config
    return clips, configs, missing
