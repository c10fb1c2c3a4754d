"""The MLflow client wrapper against real endpoints: credentials never reach a message."""

from __future__ import annotations

import pytest

from lockstep import tracking
from lockstep.errors import MlflowError

from servers import free_port

pytestmark = pytest.mark.integration


def test_credentials_in_the_tracking_uri_are_redacted_from_errors(monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:pa55-secret@127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pa55-other")
    with pytest.raises(MlflowError) as caught:
        tracking.Tracker(retries=0, timeout=5).experiment_id("lockstep/redaction")
    message = caught.value.render()
    assert f"failed at http://***@127.0.0.1:{port}" in message
    assert "pa55" not in message and "alice" not in message


def test_names_mlflow_refuses_are_mapped():
    assert tracking.safe_name("<img src=x>") == "_img src_x_"
    assert tracking.safe_name("ok.name/with:colon-and space") == "ok.name/with:colon-and space"
    assert tracking.safe_name("") == "_" and len(tracking.safe_name("x" * 1000)) == 250
