"""``footfall-aggregator calibrate``: a spot's own calibration from a labelled sample of its crops."""

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from aggregator.cli_common import load_config, opened_store
from footfall.cli_support import fail

_COLUMNS = ("gender", "gender_confidence", "age_group", "models")


def calibrate(
    site: Annotated[str, typer.Option("--site", help="Site id")],
    spot: Annotated[str, typer.Option("--spot", help="Spot id whose crops were labelled")],
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="CSV with the header crop_key,gender,age_group (female/male, one of the 8 "
            "groups, or blank where it cannot be told), e.g. 100 of the spot's people",
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Aggregator configuration file (TOML)"),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL, overriding the configuration")
    ] = None,
) -> None:
    """Measure the classifier's errors on one spot's labelled people and store them: that spot's
    shares then use them (the workbook names the calibration)."""
    import pandas as pd

    from aggregator.event_columns import AGE_PROBABILITY_COLUMNS
    from aggregator.shares.registry import calibration_for, model_of
    from aggregator.shares.site import LabelsError, fit_from_events, read_labels
    from aggregator.store.spot_calibrations import SpotCalibrationRow, SpotCalibrationsTable

    try:
        labelled = read_labels(labels)
    except FileNotFoundError:
        raise fail(f"{labels}: no such labels file; write crop_key,gender,age_group") from None
    except LabelsError as exc:
        raise fail(str(exc), code=2) from None
    cfg = load_config(config, store)
    with opened_store(cfg, upgrade=False) as event_store:
        columns = [*_COLUMNS, *AGE_PROBABILITY_COLUMNS.values()]
        found = event_store.event_columns_for_crops(site, spot, list(labelled), columns)
        frame = pd.DataFrame(found)
        if frame.empty:
            raise fail(
                f"none of the {len(labelled)} crop keys in {labels} is a crop of {site}/{spot}; "
                "label crops of this spot (the person list's Crop column)"
            )
        for column in ("gender_confidence", *AGE_PROBABILITY_COLUMNS.values()):
            frame[column] = frame[column].astype("float64")
        counts: Counter[str] = Counter(frame["models"].dropna().tolist())
        models = {}
        for role in ("gender", "age"):
            named = model_of(role, counts)
            model = calibration_for(role, named)
            if model is None:
                raise fail(
                    f"the events of {site}/{spot} name the {role} model {named!r}, which has no "
                    "calibration to start from; fit one with python -m aggregator.shares.fit_model"
                )
            models[role] = model
        try:
            fits = fit_from_events(spot, frame, labelled, models)
        except ValueError as exc:
            raise fail(f"{site}/{spot}: {exc}") from None
        now = datetime.now(UTC)
        table = SpotCalibrationsTable(event_store.engine)
        for fit in fits:
            record = {
                "role": fit.role,
                "model": fit.model,
                "fitted_on": f"{fit.labelled} labelled people of {site}/{spot}, {now:%Y-%m-%d}",
                "calibration": fit.calibration.to_dict(),
            }
            table.save(
                SpotCalibrationRow(site, spot, fit.role, fit.model, fit.labelled, record, now)
            )
    typer.echo(f"{site}/{spot}: {len(frame)} of {len(labelled)} labelled crops matched its events")
    for fit in fits:
        c = fit.calibration
        detail = (
            f"women called men {c.confusion[0, 1]:.0%}, men called women {c.confusion[1, 0]:.0%}"
            if c.confusion is not None
            else f"sharpness {c.scale:.2f}"
        )
        typer.echo(f"  {fit.role}: {fit.labelled} people, {detail}; stored for the spot's shares")
