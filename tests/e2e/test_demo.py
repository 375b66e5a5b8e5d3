"""The main-job command on the shared sample clips: spots and people end up in the workbook."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from infra.render_workbook import missing_tools
from tests.e2e.check_demo import check
from tests.e2e.printed import check_printed
from tests.services import unavailable


@pytest.fixture
def samples_dir(shared_dir: Path) -> Path:
    path = Path(os.environ.get("FOOTFALL_SAMPLES_DIR") or shared_dir / "video")
    if not (path / "short_hamilton_clip.mp4").is_file():
        unavailable(f"no sample clips in {path}")
    return path


def test_demo_produces_the_site_workbook(
    tmp_path: Path, samples_dir: Path, models_dir: Path
) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--samples-dir",
            str(samples_dir),
            "--models-dir",
            str(models_dir),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    counted = check(out)
    assert set(counted) == {"street-corner", "shop-entrance", "stage-door", "kiosk"}
    assert f"workbook: {out / 'demo-high-street.xlsx'}" in result.output
    for spot, people in counted.items():
        assert f"{spot}: {people} people" in result.output
    # Printed as the investor prints it: the Summary on one page, no chart cut by a page break.
    if missing := missing_tools():
        unavailable(f"printing the demo workbook needs {', '.join(missing)}")
    check_printed(out / "demo-high-street.xlsx", tmp_path)
