"""Settings: defaults < TOML file < JOBCAST_* environment < flags; unusable ones refused."""

from __future__ import annotations

import re

import pytest

from jobcast.config import ConfigError, load_settings


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text("port = 9000\nmax_running_jobs = 3\nheartbeat_seconds = 5\n")
    monkeypatch.setenv("JOBCAST_MAX_RUNNING_JOBS", "5")
    s = load_settings(cfg, heartbeat_seconds=None)
    assert (s.port, s.max_running_jobs, s.heartbeat_seconds, s.host) == (9000, 5, 5.0, "127.0.0.1")
    assert load_settings(cfg, max_running_jobs=7).max_running_jobs == 7
    monkeypatch.setenv("JOBCAST_CONFIG", str(cfg))
    assert load_settings().port == 9000


def test_missing_config_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_keys_in_the_file_are_named_with_the_file(tmp_path):
    cfg = tmp_path / "jobcast.toml"
    # a misspelt setting, and a misspelt table: ignoring `[polcy]` would run with fewer
    # restrictions than the file asks for
    cfg.write_text('port = 9000\nmax_runing_jobs = 3\n[polcy]\nmode = "safe"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    message = str(caught.value)
    assert "'max_runing_jobs' (did you mean 'max_running_jobs'?)" in message
    assert "'polcy' (did you mean 'policy'?)" in message and str(cfg) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = 70000\n", "port: Input should be less than or equal to 65535 (got 70000)"),
        ("port = \n", "is not valid TOML"),
        ("config = 'other.toml'\n", "unknown setting 'config'"),
    ],
)
def test_bad_files_are_one_line(tmp_path, text, expected):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        load_settings(cfg)
    assert "\n" not in str(caught.value)


def test_env_values_are_checked_but_other_jobcast_names_pass(monkeypatch):
    # JOBCAST_URL, JOBCAST_TOKEN (the CLI's) and JOBCAST_JOB_ID (a job's) share the prefix: a
    # server started where they are set must start
    monkeypatch.setenv("JOBCAST_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("JOBCAST_JOB_ID", "01abc")
    assert load_settings().port == 8080
    monkeypatch.setenv("JOBCAST_PORT", "eighty")
    with pytest.raises(ConfigError, match="port: Input should be a valid integer"):
        load_settings()


def test_retention_settings_are_checked(tmp_path):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text("retention_days = 7\nretention_max_jobs = 500\nretention_max_bytes = 1000000\n")
    s = load_settings(cfg)
    assert (s.retention_days, s.retention_max_jobs, s.retention_max_bytes) == (7, 500, 1000000)
    assert load_settings().retention_days is None  # off unless asked for
    for bad in ("retention_days = 0", "retention_max_jobs = 0", "retention_max_bytes = -1"):
        cfg.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=bad.split()[0]):
            load_settings(cfg)
    cfg.write_text("retention_day = 7\n")
    with pytest.raises(ConfigError, match="did you mean 'retention_days'"):
        load_settings(cfg)


def test_webhooks_in_the_file_are_checked_key_by_key(tmp_path):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        '[[webhooks]]\nurl = "https://ci.example/hook"\nsecret = "s"\n'
        '[[webhooks]]\nurl = "http://127.0.0.1:9/x"\nevents = ["job.started", "job.finished"]\n'
        "webhook_allow_note = 1\n"
    )
    with pytest.raises(ConfigError, match=r"webhooks\.1\.webhook_allow_note: Extra inputs"):
        load_settings(cfg)
    cfg.write_text('webhook_allow = ["https://ci.example/hooks"]\n[[webhooks]]\nurl = "x"\n')
    with pytest.raises(ConfigError, match=r"webhooks\.0\.url: Value error, must be an http"):
        load_settings(cfg)
    cfg.write_text('[[webhooks]]\nurl = "https://a.example/h"\nevents = ["job.ended"]\n')
    with pytest.raises(ConfigError, match=r"webhooks\.0\.events\.0"):
        load_settings(cfg)
    cfg.write_text('webhook_allow = ["https://user:pw@ci.example/"]\n')
    with pytest.raises(ConfigError, match=r"webhook_allow\[0\] .* must not carry a user"):
        load_settings(cfg)
    cfg.write_text('webhook_allow = ["https://ci.example/"]\n[[webhooks]]\nurl = "https://a.b/h"\n')
    settings = load_settings(cfg)
    assert settings.webhooks[0].events == ["job.finished"] and settings.webhooks[0].secret is None
    assert settings.webhook_attempts == 5
