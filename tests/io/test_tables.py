"""Table names resolve to the right kind: catalog names, absolute paths, warehouse folders."""

from __future__ import annotations

from tests.conftest import SettingsFactory
from userprofile.io.tables import resolve


def test_table_names_resolve(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        tables={
            "user_profile": "main.userprofile.user_profile",
            "silver_events": "s3a://bucket/silver/events",
            "bronze_events": "/abs/bronze",
        }
    )
    assert resolve(settings, "user_profile").name == "main.userprofile.user_profile"
    assert resolve(settings, "silver_events").path == "s3a://bucket/silver/events"
    assert resolve(settings, "bronze_events").path == "/abs/bronze"
    relative = resolve(settings, "user_features")
    assert relative.name is None
    assert relative.path == f"{settings.storage.warehouse}/gold/user_features"
