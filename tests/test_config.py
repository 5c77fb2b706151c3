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
        (
            "[[extract]]\nname = 'e'\npattern = '(a'\n",
            "extract.0.pattern: bad pattern '(a': missing ): (a",
        ),
        ("[templates.t]\ncommand = ['x']\nextract = [{name = 'e'}]\n", "extract.0.pattern"),
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


def _tokens(tmp_path, body: str):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(body)
    return load_settings(cfg)


def test_tokens_are_read_and_checked_without_showing_them(tmp_path):
    s = _tokens(
        tmp_path,
        '[[tokens]]\nname = "ci"\ntoken = "s3cret-value"\nscopes = ["read", "run"]\n'
        '[[tokens]]\nname = "infra"\ntoken_sha256 = "' + "ab" * 32 + '"\nscopes = ["admin"]\n'
        'labels = { team = "infra" }\n',
    )
    assert [(t.name, [str(x) for x in t.scopes]) for t in s.tokens] == [
        ("ci", ["read", "run"]),
        ("infra", ["admin"]),
    ]
    assert s.tokens[1].labels == {"team": "infra"}
    assert "s3cret-value" not in repr(s)
    bad = {
        'scopes = ["read", "wirte"]': "tokens.0.scopes.1: Input should be 'read', 'run', 'exec', "
        "'control', 'admin' or 'metrics' (got 'wirte')",
        'scopes = ["read"]\ntokn = "s3cret-value"': "tokens.0.tokn: Extra inputs are not permitted",
        'scopes = ["read"]\ntoken_sha256 = "' + "ab" * 32 + '"': "needs exactly one of `token`",
        "scopes = []": "tokens.0.scopes: List should have at least 1 item",
    }
    for extra, expected in bad.items():
        with pytest.raises(ConfigError) as caught:
            _tokens(tmp_path, f'[[tokens]]\nname = "ci"\ntoken = "s3cret-value"\n{extra}\n')
        assert expected in str(caught.value)
        assert "s3cret-value" not in str(caught.value) and "\n" not in str(caught.value)
    twice = '[[tokens]]\nname = "{}"\ntoken = "s3cret-value"\nscopes = ["read"]\n'
    with pytest.raises(ConfigError, match="tokens 'a' and 'b' are the same token") as caught:
        _tokens(tmp_path, twice.format("a") + twice.format("b"))
    assert "s3cret-value" not in str(caught.value)
    with pytest.raises(ConfigError, match="two tokens are named 'a'"):
        _tokens(tmp_path, twice.format("a") + twice.format("a").replace("s3cret", "other"))
    with pytest.raises(ConfigError, match="'admin' is the generated token's"):
        _tokens(tmp_path, twice.format("admin"))
    # a check of the settings as a whole (templates against the policy) names no input at all
    late = '[policy]\nmax_timeout = 10\n[templates.t]\ncommand = ["true"]\ntimeout = 100\n'
    with pytest.raises(ConfigError, match="max_timeout") as caught:
        _tokens(tmp_path, twice.format("ci") + late)
    assert "s3cret-value" not in str(caught.value)


def test_tokens_from_the_environment_are_json(monkeypatch):
    monkeypatch.setenv("JOBCAST_TOKENS", '[{"name": "ci", "token": "t0ken", "scopes": ["read"]}]')
    assert load_settings().tokens[0].name == "ci"
    monkeypatch.setenv("JOBCAST_TOKENS", "[{not json t0ken")
    with pytest.raises(ConfigError, match='field "tokens"') as caught:
        load_settings()
    assert "t0ken" not in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"])
def test_auth_none_is_allowed_on_loopback(host, monkeypatch):
    monkeypatch.setenv("JOBCAST_AUTH", "none")
    assert load_settings(host=host).auth == "none"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "box.example"])
def test_auth_none_is_refused_anywhere_else(host, monkeypatch):
    monkeypatch.setenv("JOBCAST_AUTH", "none")
    with pytest.raises(ConfigError, match="auth = 'none' is refused on --host"):
        load_settings(host=host)
    monkeypatch.setenv("JOBCAST_AUTH", "nobody")
    with pytest.raises(ConfigError, match="auth: Input should be 'token' or 'none'"):
        load_settings()


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
    with pytest.raises(ConfigError, match=r"webhooks\.0\.url: must be an http"):
        load_settings(cfg)
    cfg.write_text('[[webhooks]]\nurl = "https://a.example/h"\nevents = ["job.ended"]\n')
    with pytest.raises(ConfigError, match=r"webhooks\.0\.events\.0"):
        load_settings(cfg)
    cfg.write_text('webhook_allow = ["https://user:pw@ci.example/"]\n')
    with pytest.raises(ConfigError, match=r"webhook_allow\.0: must not carry a user"):
        load_settings(cfg)
    # A secret is never shown, not even in a table that is wrong.
    cfg.write_text('[[webhooks]]\nurl = "https://a.b/h"\nsecret = "hidden-value"\nsecrett = "x"\n')
    with pytest.raises(ConfigError, match=r"webhooks\.0\.secrett: Extra inputs") as caught:
        load_settings(cfg)
    assert "hidden-value" not in str(caught.value)
    cfg.write_text('[[webhooks]]\nurl = "https://a.b/h"\nsecret = ""\n')
    with pytest.raises(ConfigError, match=r"webhooks\.0\.secret: "):
        load_settings(cfg)
    cfg.write_text('webhook_allow = ["https://ci.example/"]\n[[webhooks]]\nurl = "https://a.b/h"\n')
    settings = load_settings(cfg)
    assert settings.webhooks[0].events == ["job.finished"] and settings.webhooks[0].secret is None
    assert "hidden" not in repr(
        load_settings(webhooks=[{"url": "http://a.b/", "secret": "hidden"}])
    )
    assert settings.webhook_attempts == 5


def test_watch_patterns_roots_and_sources_are_checked_at_load(tmp_path):
    (tmp_path / "streams").mkdir()
    watch = [f"{tmp_path}/streams/*.typescript"]
    s = load_settings(watch=watch)
    assert s.watch == watch and s.watch_roots == [] and s.sources == []
    with pytest.raises(ConfigError, match="outside every watch root"):
        load_settings(watch=watch, watch_roots=[f"{tmp_path}/elsewhere"])
    with pytest.raises(ConfigError, match=r"`\.\.` is refused"):
        load_settings(watch=[f"{tmp_path}/streams/../*.typescript"])
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        f"watch = {watch!r}\n".replace("'", '"')
        + f'[[sources]]\npath = "{tmp_path}/streams/A.typescript"\ntmux = "a"\n'
    )
    (source,) = load_settings(cfg).sources
    assert source.tmux == "a" and source.screen is None
    cfg.write_text(f'[[sources]]\npath = "{tmp_path}/x.log"\ntmux = "a"\n')
    with pytest.raises(ConfigError, match="matched by no --watch pattern"):
        load_settings(cfg)
    cfg.write_text(f'watch = ["{tmp_path}/*.log"]\n[[sources]]\npath = "{tmp_path}/x.log"\n')
    with pytest.raises(ConfigError, match="exactly one of `tmux` or `screen`"):
        load_settings(cfg)


@pytest.mark.parametrize(
    ("store", "shown"),
    [
        ("sqlite", "sqlite"),
        ("redis://127.0.0.1:6380/2", "redis://127.0.0.1:6380/2"),
        ("rediss://:s3cret@cache.example:6380/0", "rediss://:***@cache.example:6380/0"),
        ("redis://ops:s3cret@cache.example/1", "redis://ops:***@cache.example/1"),
    ],
)
def test_a_redis_store_url_is_shown_without_its_password(store, shown):
    from jobcast.config import Settings, safe_store_url

    assert Settings(store=store).store == store
    assert safe_store_url(store) == shown


@pytest.mark.parametrize("store", ["redis", "postgres://db/x", "redis:///0", "sqlite3"])
def test_a_store_neither_sqlite_nor_a_redis_url_is_refused(store):
    from pydantic import ValidationError

    from jobcast.config import Settings

    with pytest.raises(ValidationError, match="redis://HOST:PORT/DB"):
        Settings(store=store)


def test_cbos_variables_are_aliases_below_jobcasts_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CBOS_STREAM_STREAM_DIR", "/srv/claude_streams")
    monkeypatch.setenv("CBOS_STREAM_MAX_BUFFER_SIZE", "5000")
    settings = load_settings()
    assert settings.watch == ["/srv/claude_streams/*.typescript"]
    assert settings.buffer_bytes == 5000
    monkeypatch.setenv("JOBCAST_BUFFER_BYTES", "7")
    assert load_settings().buffer_bytes == 7
    monkeypatch.setenv("CBOS_STREAM_MAX_BUFFER_SIZE", "many")
    monkeypatch.delenv("JOBCAST_BUFFER_BYTES")
    with pytest.raises(ConfigError, match="buffer_bytes"):
        load_settings()
