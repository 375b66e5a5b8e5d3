"""docs/configuration.md must be what the configuration models generate."""

from infra.config_docs import DEFAULT_PATH, render


def test_configuration_reference_is_current() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m infra.config_docs` and commit it"
    )
