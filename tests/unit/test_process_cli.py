"""The process command's clip list (options and TOML/CSV files) and its errors, exact text."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.clips import ClipSpecError, clips_from_options, load_clips_file

runner = CliRunner()


def test_one_site_and_start_for_every_clip() -> None:
    clips = clips_from_options(
        [Path("a.mp4"), Path("b.mp4")],
        ["berlin"],
        ["north", "south"],
        ["2026-05-01T09:00:00Z"],
        None,
    )
    assert [(c.site, c.spot) for c in clips] == [("berlin", "north"), ("berlin", "south")]
    assert clips[1].start == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert clips[0].agent is None


def test_option_counts_must_match() -> None:
    with pytest.raises(ClipSpecError) as info:
        clips_from_options([Path("a"), Path("b"), Path("c")], ["s"], ["p", "q"], ["x"], None)
    assert str(info.value) == "--spot given 2 times for 3 clips: give it once, or once per clip"


def test_bad_values_are_named() -> None:
    with pytest.raises(ClipSpecError) as info:
        clips_from_options([Path("a")], ["s/1"], ["p"], ["2026-05-01T09:00:00"], None)
    assert str(info.value).splitlines() == [
        "--clip: clip 1: site: 's/1' is not a valid id: use 1-32 characters of letters, digits, "
        "'-' or '_', starting with a letter or digit",
        "--clip: clip 1: start: needs a time zone (e.g. 2026-05-01T09:00:00+02:00 or "
        "2026-05-01T07:00:00Z)",
    ]


def test_a_start_no_event_could_carry_is_named() -> None:
    with pytest.raises(ClipSpecError) as info:
        clips_from_options([Path("a")], ["s"], ["p"], ["9999-12-31T09:00:00Z"], None)
    assert str(info.value) == "--clip: clip 1: start: must be within 2000-01-01 to 2099-12-31 (UTC)"


def test_toml_clips_file_resolves_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "clips.toml"
    path.write_text(
        '[[clip]]\npath = "v/a.mp4"\nsite = "s"\nspot = "p"\nstart = 2026-05-01T09:00:00+02:00\n'
        '[[clip]]\npath = "/abs/b.mp4"\nsite = "s"\nspot = "q"\nstart = "2026-05-01T10:00:00Z"\n'
        'agent = "cam-2"\n',
        encoding="utf-8",
    )
    clips = load_clips_file(path)
    assert clips[0].path == tmp_path / "v" / "a.mp4"
    assert clips[0].start == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)
    assert clips[1].path == Path("/abs/b.mp4") and clips[1].agent == "cam-2"


def test_csv_clips_file(tmp_path: Path) -> None:
    path = tmp_path / "clips.csv"
    path.write_text(
        "path,site,spot,start,agent\na.mp4,s,p,2026-05-01T09:00:00Z,\nb.mp4,s,q,2026-05-01T09:30:00Z,cam\n",
        encoding="utf-8",
    )
    clips = load_clips_file(path)
    assert [(c.path.name, c.spot, c.agent) for c in clips] == [
        ("a.mp4", "p", None),
        ("b.mp4", "q", "cam"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "c.toml",
            "[[clip]]\npath = 'a'\nsite = 's'\n",
            ["clip 1: spot: Field required", "clip 1: start: Field required"],
        ),
        (
            "c.toml",
            "[[clips]]\npath = 'a'\n",
            ["unknown keys ['clips']; list clips as [[clip]] tables"],
        ),
        ("c.toml", "", ["lists no clips"]),
        ("c.toml", "[[clip]\n", ["not valid TOML: "]),
        (
            "c.toml",
            "[[clip]]\npath='a'\nsite='s'\nspot='p'\nstart=2026-05-01T09:00:00Z\nfps=25\n",
            ["clip 1: fps: unknown key"],
        ),
    ],
    ids=["missing-fields", "wrong-table", "empty", "bad-toml", "unknown-key"],
)
def test_clips_file_errors(tmp_path: Path, name: str, text: str, expected: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ClipSpecError) as info:
        load_clips_file(path)
    lines = str(info.value).splitlines()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}: {want}"), line


def test_cli_needs_something_to_process(tmp_path: Path) -> None:
    result = runner.invoke(app, ["process", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == (
        "error: nothing to process: give --clip PATH (with --site, --spot, --start) or "
        "--clips FILE\n"
    )


def test_cli_reports_every_clip_problem_and_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "process",
            "--out",
            str(tmp_path),
            "--clip",
            "a.mp4",
            "--clip",
            "b.mp4",
            "--site",
            "s",
            "--spot",
            "p",
            "--start",
            "yesterday",
        ],
    )
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: --clip: clip 1: start: 'yesterday' is not an ISO 8601 time (e.g. "
        "2026-05-01T09:00:00+02:00 or 2026-05-01T07:00:00Z)",
        "error: --clip: clip 2: start: 'yesterday' is not an ISO 8601 time (e.g. "
        "2026-05-01T09:00:00+02:00 or 2026-05-01T07:00:00Z)",
    ]


def test_cli_site_without_clip(tmp_path: Path) -> None:
    result = runner.invoke(app, ["process", "--out", str(tmp_path), "--site", "s"])
    assert result.exit_code == 2
    assert result.output == "error: --site, --spot and --start describe --clip; no --clip given\n"


def test_cli_missing_models_is_one_line(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    empty = tmp_path / "models"
    empty.mkdir()
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'site = "s"\nspot = "p"\nagent = "a"\n[models]\ndir = "{empty}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\nallow_download = false\n',
        encoding="utf-8",
    )
    result = runner.invoke(
        app,
        [
            "process",
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(cfg),
            "--clip",
            str(clip),
            "--site",
            "s",
            "--spot",
            "p",
            "--start",
            "2026-05-01T09:00:00Z",
        ],
    )
    assert result.exit_code == 1
    # The detectors ship with the package; the first model that must come from elsewhere.
    assert result.output.startswith("error: model 'cydral-gender' (gender-v1.onnx) is not in ")
    assert len(result.output.splitlines()) == 1
