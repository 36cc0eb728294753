"""The settings module refuses bad KWS_* values loudly, naming the variable and the rule."""

import os
import subprocess
import sys

import pytest

from kws_admin.settings import BASE_DIR


def settings_error(**env: str) -> str:
    """Import the settings in a fresh interpreter with these variables; return its error."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KWS_")}
    result = subprocess.run(
        [sys.executable, "-c", "import kws_admin.settings"],
        env={**clean, "KWS_DATA_DIR": os.environ.get("KWS_DATA_DIR", "/tmp/kws-env"), **env},
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.stderr.strip().splitlines()[-1] if result.returncode else ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KWS_HEARTBEAT_INTERVAL": "fast"}, "KWS_HEARTBEAT_INTERVAL='fast' is not a number"),
        ({"KWS_HEARTBEAT_INTERVAL": "0"}, "KWS_HEARTBEAT_INTERVAL='0' must be at least 0.1"),
        ({"KWS_DETECTION_WINDOW": "nan"}, "KWS_DETECTION_WINDOW='nan' must be at least 0.5"),
        ({"KWS_DETECTION_WINDOW": "20"}, "KWS_DETECTION_WINDOW='20' must be at most 15.0"),
        ({"KWS_HEARTBEAT_INTERVAL": "3", "KWS_DETECTION_WINDOW": "2"},
         "must be longer than the heartbeat interval"),
        ({"KWS_DEBUG": "maybe"}, "KWS_DEBUG='maybe' is not a boolean"),
    ],
)  # fmt: skip
def test_a_bad_value_stops_the_node_with_a_message_naming_it(env, message):
    error = settings_error(**env)
    assert "ImproperlyConfigured" in error and message in error


def test_good_values_are_accepted():
    assert settings_error(KWS_HEARTBEAT_INTERVAL="0.5", KWS_DETECTION_WINDOW="15") == ""
