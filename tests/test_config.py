"""Settings: defaults < TOML file < JOBCAST_* environment < flags."""

from __future__ import annotations

import pytest

from jobcast.config import load_settings


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        'port = 9000\nmax_running_jobs = 3\nheartbeat_seconds = 5\n[policy]\nmode = "safe"\n'
    )
    monkeypatch.setenv("JOBCAST_MAX_RUNNING_JOBS", "5")
    s = load_settings(cfg, heartbeat_seconds=None)
    assert (s.port, s.max_running_jobs, s.heartbeat_seconds, s.host) == (9000, 5, 5.0, "127.0.0.1")
    assert load_settings(cfg, max_running_jobs=7).max_running_jobs == 7
    monkeypatch.setenv("JOBCAST_CONFIG", str(cfg))
    assert load_settings().port == 9000


def test_missing_config_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
