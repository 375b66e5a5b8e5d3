"""Remote configuration: the model, the overlay on the agent's file, the manager's answers, the
pipeline's apply hook and the sender's config subscription (fake broker). The same flow against
the real broker is tests/integration/test_remote_config_services.py."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import Delivery
from edge_agent.config import AgentConfig
from edge_agent.remote_config import (
    REMOTE_CONFIG_FILE,
    ConfigAnswer,
    RemoteConfigManager,
    effective_config,
)
from edge_agent.vision.detection import FakeDetector
from edge_agent.vision.pipeline import Pipeline
from edge_agent.vision.settings import CountingSettings
from footfall.connections import BrokerSettings
from footfall.contract import AgentStatus, ConfigOutcome, ConfigResult, Direction, decode
from footfall.remote_config import (
    RemoteConfig,
    RemoteConfigError,
    load_remote_config,
    parse_remote_config,
)
from models.runtime.classifier import FakeClassifier
from tests.fake_broker import FakeBroker
from tests.unit.synthetic_faces import Walker, face_image, timeline

START = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
HORIZONTAL = {"line": [[0.0, 0.5], [1.0, 0.5]], "in_towards": "bottom"}


def _config(tmp_path: Path, **extra: object) -> AgentConfig:
    return AgentConfig.model_validate(
        {"site": "site-a", "spot": "spot-1", "agent": "cam-1", "data_dir": tmp_path, **extra}
    )


def _payload(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_sections_replace_the_files_and_others_stay(tmp_path: Path) -> None:
    base = _config(
        tmp_path,
        config_version="file-1",
        classifier={"min_quality": 0.4, "gender_model": "cydral-gender"},
        detector={"score_threshold": 0.6, "detect_every_n_frames": 2},
        tracker={"low_score": 0.6},
    )
    remote = RemoteConfig.model_validate(
        {
            "config_version": "r-2",
            "counting": HORIZONTAL,
            "classifier": {"min_gender_confidence": 0.8},
            "delivery": {"heartbeat_seconds": 5},
        }
    )
    active = effective_config(base, remote)
    assert active.config_version == "r-2"
    assert active.counting.line == ((0.0, 0.5), (1.0, 0.5))
    # A given section replaces the file's: keys left out take their defaults.
    assert active.classifier.min_quality == 0.5
    assert active.classifier.min_gender_confidence == 0.8
    assert active.classifier.gender_model == "cydral-gender"  # not remotely changeable
    assert active.delivery.heartbeat_seconds == 5
    # Sections left out keep the file's values.
    assert active.detector.detect_every_n_frames == 2
    assert active.detector.max_detections_per_second == 12.0
    assert active.tracker.low_score == 0.6
    assert active.mqtt is base.mqtt and active.site == "site-a"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"config_version": "x", "counting": {"line": [[0, 0], [2, 0.5]]}},
            "counting: line points must be within 0-1 when units = 'fraction'",
        ),
        ({"config_version": "x", "site": "elsewhere"}, "site: unknown key"),
        ({"config_version": "x", "mqtt": {"host": "evil"}}, "mqtt: unknown key"),
        ({"counting": HORIZONTAL}, "config_version: Field required"),
        (
            {"config_version": "x", "classifier": {"gender_model": "other"}},
            "classifier.gender_model: unknown key",
        ),
        (
            {"config_version": "x", "tracker": {"low_score": 0.2, "high_score": 0.7}},
            "tracker: low_score (0.2) is below detector.score_threshold (0.5)",
        ),
        (
            {"config_version": "x", "classifier": {"k_best": "5"}},
            "classifier.k_best: Input should be a valid integer, got '5'",
        ),
        (
            {"config_version": "x", "tracker": {"appearance_reid": "off"}},
            "tracker.appearance_reid: Input should be a valid boolean, got 'off'",
        ),
        ({"config_version": 3}, "config_version: Input should be a valid string, got 3"),
    ],
)
def test_invalid_remote_configs_name_the_key(
    tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(RemoteConfigError) as caught:
        effective_config(_config(tmp_path), parse_remote_config(_payload(**fields)))
    assert message in str(caught.value)


def test_unreadable_payload_is_named() -> None:
    with pytest.raises(RemoteConfigError, match="payload: not JSON"):
        parse_remote_config(b"{not json")


def test_manager_applies_saves_rejects_and_clears(tmp_path: Path) -> None:
    clock = iter(START + timedelta(seconds=n) for n in range(100))
    manager = RemoteConfigManager(_config(tmp_path), clock=lambda: next(clock))
    seen: list[str] = []
    manager.listeners.append(lambda active: seen.append(active.config_version))

    applied = manager.handle(_payload(config_version="r-1", counting=HORIZONTAL))
    assert applied.outcome is ConfigOutcome.APPLIED and applied.reason is None
    assert (applied.config_version, applied.active_version) == ("r-1", "r-1")
    assert decode(ConfigResult, applied.to_json()) == applied
    assert (tmp_path / REMOTE_CONFIG_FILE).is_file() and seen == ["r-1"]

    rejected = manager.handle(_payload(config_version="r-2", counting={"line": [[0, 0], [0, 0]]}))
    assert rejected.outcome is ConfigOutcome.REJECTED
    assert rejected.config_version == "r-2" and rejected.active_version == "r-1"
    assert (
        rejected.reason
        == "counting: line needs two different points, got {'line': [[0, 0], [0, 0]]}"
    )
    assert seen == ["r-1"] and manager.active.config_version == "r-1"

    garbage = manager.handle(b"\xff\xfe")
    assert garbage.outcome is ConfigOutcome.REJECTED and garbage.config_version is None

    # A restart keeps the applied configuration.
    again = RemoteConfigManager.load(_config(tmp_path))
    assert again.active.config_version == "r-1"
    assert again.active.counting.line == ((0.0, 0.5), (1.0, 0.5))

    cleared = manager.handle(b"")
    assert cleared.outcome is ConfigOutcome.APPLIED and cleared.active_version == "1"
    assert not (tmp_path / REMOTE_CONFIG_FILE).exists() and seen[-1] == "1"


def test_detector_cadence_can_change_remotely(tmp_path: Path) -> None:
    base = _config(tmp_path, detector={"score_threshold": 0.45, "input_width": 320})
    remote = RemoteConfig.model_validate(
        {"config_version": "r-3", "detector": {"max_detections_per_second": 8}}
    )
    active = effective_config(base, remote)
    assert active.detector.max_detections_per_second == 8.0
    assert active.detector.detect_every_n_frames == 1
    # Only the cadence is remote: the model and its thresholds stay the file's.
    assert (active.detector.score_threshold, active.detector.input_width) == (0.45, 320)
    with pytest.raises(RemoteConfigError, match="max_detections_per_second"):
        parse_remote_config(
            _payload(config_version="r-4", detector={"max_detections_per_second": -1})
        )


def test_a_saved_config_that_no_longer_fits_the_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / REMOTE_CONFIG_FILE).write_text(
        json.dumps({"config_version": "r-1", "tracker": {"low_score": 0.5}})
    )
    base = _config(tmp_path, detector={"score_threshold": 0.6}, tracker={"low_score": 0.6})
    manager = RemoteConfigManager.load(base)
    assert manager.remote is None and manager.active is base


def test_operator_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "move.toml"
    path.write_text(
        'config_version = "2026-06-01"\n[counting]\nline = [[0.0, 0.5], [1.0, 0.5]]\n'
        'in_towards = "bottom"\n'
    )
    remote = load_remote_config(path)
    assert json.loads(remote.to_json()) == {
        "config_version": "2026-06-01",
        "counting": {
            "mode": "line",
            "units": "fraction",
            "line": [[0.0, 0.5], [1.0, 0.5]],
            "in_towards": "bottom",
            "hysteresis": 0.04,
            "edge_margin": 0.08,
            "in_from": "left",
            "in_to": "right",
        },
    }


def _crossing_direction(switch_at: int | None, tmp_path: Path) -> tuple[Direction, Pipeline]:
    """A person walking left to right across the default vertical line; the pipeline is told
    to use a horizontal line (which they never cross) just before frame ``switch_at``."""
    frames = timeline([Walker("a", (40, 240), (200, 0), 0.0, 2.8, size=70.0)], fps=25, duration=2.8)
    pipe = Pipeline(
        detector=FakeDetector([f.detections for f in frames]),
        classifier=FakeClassifier(),
        address=_config(tmp_path).address,
    )
    moved = _config(tmp_path, config_version="moved", counting=HORIZONTAL)
    applied: list[str] = []
    out = []
    for n, f in enumerate(frames):
        if n == switch_at:
            pipe.request_config(moved, on_applied=lambda c: applied.append(c.config_version))
            assert pipe.counting != moved.counting  # not in the middle of anything
        out += pipe.step(
            face_image(640, 480, f.detections.boxes, seed=n), START + timedelta(seconds=f.t)
        )
    out += pipe.finish()
    assert len(out) == 1
    if switch_at is not None:
        assert applied == ["moved"] and pipe.config_version == "moved"
        assert pipe.counting == CountingSettings.model_validate(HORIZONTAL)
    return out[0].event.direction, pipe


def test_pipeline_takes_a_moved_line_between_frames(tmp_path: Path) -> None:
    assert _crossing_direction(None, tmp_path)[0] is Direction.IN
    assert _crossing_direction(5, tmp_path)[0] is Direction.PASSED


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    yield FakeBroker()


def _wait(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_sender_subscribes_answers_and_heartbeat_follows(
    tmp_path: Path, broker: FakeBroker
) -> None:
    config = _config(
        tmp_path,
        mqtt=BrokerSettings(host="fake"),
        delivery={"heartbeat_seconds": 3600},
    )
    prefix = "footfall/v1/site-a/spot-1/cam-1"
    broker.retained[f"{prefix}/config"] = _payload(
        config_version="r-1", delivery={"heartbeat_seconds": 0.5}
    )
    delivery = Delivery(config, links=broker.link)
    with delivery:
        _wait(lambda: broker.on_topic(f"{prefix}/config-result"))
        result = decode(ConfigResult, broker.on_topic(f"{prefix}/config-result")[0].payload)
        assert result.outcome is ConfigOutcome.APPLIED and result.config_version == "r-1"
        assert broker.on_topic(f"{prefix}/config-result")[0].retain
        # The shorter heartbeat interval takes effect at once; the heartbeat says r-1.
        _wait(lambda: broker.on_topic(f"{prefix}/heartbeat"))
        beat = decode(AgentStatus, broker.on_topic(f"{prefix}/heartbeat")[0].payload)
        assert beat.config_version == "r-1"

        broker.links[-1].deliver(f"{prefix}/config", _payload(config_version="r-2", x=1))
        _wait(lambda: len(broker.on_topic(f"{prefix}/config-result")) == 2)
        second = decode(ConfigResult, broker.on_topic(f"{prefix}/config-result")[1].payload)
        assert second.outcome is ConfigOutcome.REJECTED and second.reason == "x: unknown key"
        assert delivery.status.config_version == "r-1"
        # The config in effect is retained again (byte for byte), so a restart does not meet
        # the rejected one.
        assert broker.retained[f"{prefix}/config"] == _payload(
            config_version="r-1", delivery={"heartbeat_seconds": 0.5}
        )
        # Each answer is followed by the retained status with the version in effect.
        statuses = [decode(AgentStatus, m.payload) for m in broker.on_topic(f"{prefix}/status")]
        assert len(statuses) >= 3 and statuses[-1].config_version == "r-1"


def test_a_rejection_restores_the_config_in_effect(tmp_path: Path) -> None:
    manager = RemoteConfigManager(_config(tmp_path))
    bad = _payload(config_version="r-2", x=1)
    # Nothing remote in effect: the rejected message is cleared.
    first = manager.answer(bad)
    assert first.result is not None and first.result.outcome is ConfigOutcome.REJECTED
    assert first.restore == b""
    assert manager.answer(b"") == ConfigAnswer(None)  # the broker's copy of the clearing

    good = _payload(config_version="r-1", counting=HORIZONTAL)
    applied = manager.answer(good)
    assert applied.result is not None and applied.result.outcome is ConfigOutcome.APPLIED
    assert applied.restore is None
    assert manager.answer(bad).restore == good
    assert manager.answer(good) == ConfigAnswer(None)
    # The same config pushed again by the operator is answered as usual.
    again = manager.answer(good)
    assert again.result is not None and again.result.outcome is ConfigOutcome.APPLIED

    # After a restart the saved payload is what is restored, exactly as published.
    restarted = RemoteConfigManager.load(_config(tmp_path))
    assert restarted.answer(bad).restore == good


def test_a_push_that_overtakes_the_restore_is_what_the_topic_ends_on(tmp_path: Path) -> None:
    manager = RemoteConfigManager(_config(tmp_path))
    good = _payload(config_version="r-1")
    newer = _payload(config_version="r-3")
    assert manager.answer(good).restore is None
    assert manager.answer(_payload(config_version="r-2", x=1)).restore == good
    # The operator's next push reaches the broker before the restore and is applied first.
    assert manager.answer(newer).restore is None
    # The restore then comes back and would leave r-1 retained: r-3 is put back instead.
    assert manager.answer(good) == ConfigAnswer(None, newer)
    assert manager.answer(newer) == ConfigAnswer(None)
    assert manager.active_version == "r-3"


def test_aggregator_takes_config_results_and_checks_their_identity(tmp_path: Path) -> None:
    from aggregator.validate import AcceptedConfigResult, Reason, Rejected, validate

    manager = RemoteConfigManager(_config(tmp_path))
    answer = manager.handle(_payload(config_version="r-1")).to_json()
    outcome = validate("footfall/v1", "footfall/v1/site-a/spot-1/cam-1/config-result", answer)
    assert isinstance(outcome, AcceptedConfigResult)
    assert outcome.result.outcome is ConfigOutcome.APPLIED
    other = validate("footfall/v1", "footfall/v1/site-a/spot-1/cam-9/config-result", answer)
    assert isinstance(other, Rejected) and other.reason is Reason.IDENTITY_MISMATCH


def test_example_remote_config_validates(tmp_path: Path) -> None:
    example = (
        Path(__file__).resolve().parents[2] / "infra" / "config" / "remote-config.example.toml"
    )
    remote = load_remote_config(example)
    active = effective_config(_config(tmp_path), remote)
    assert active.counting.in_towards == "bottom" and active.config_version == remote.config_version


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--site", "s", "--spot", "p"], 2, "error: give a configuration FILE, or --clear"),
        (["FILE", "--site", "s"], 2, "error: give --registry, or --site and --spot"),
        (
            ["FILE", "--site", "s", "--spot", "p"],
            2,
            "bad.toml: invalid configuration\n  counting.line.1: Field required",
        ),
    ],
)
def test_push_config_checks_before_connecting(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    from typer.testing import CliRunner

    from aggregator.cli import app

    bad = tmp_path / "bad.toml"
    bad.write_text('config_version = "x"\n[counting]\nline = [[0, 0]]\n')
    ops = tmp_path / "ops.toml"
    ops.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1\n')
    argv = ["fleet", "push-config", "--agent", "cam-1", "--config", str(ops)]
    argv += [str(bad) if a == "FILE" else a for a in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == code, result.output
    assert message in result.output
