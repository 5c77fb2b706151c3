"""Starting the command line loads only what the command run needs (checked in sys.modules of a
fresh interpreter; how long it takes is in bench/cli.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: what no command but `serve` (and the streaming ones) may load to start
HEAVY = ("pydantic", "aiohttp", "rich", "httpx", "websockets", "jobcast.models", "jobcast.api")


def _loaded(code: str, *argv: str) -> set[str]:
    """The modules loaded once `code` has run in a fresh interpreter, given `argv`."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.__stderr__.write('MODULES ' + ' '.join(sys.modules) + '\\n'))\n"
        f"sys.argv = ['jobcast', *{list(argv)!r}]\n{code}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}


def test_importing_the_cli_loads_no_heavy_module():
    loaded = _loaded("import jobcast.cli")
    assert _heavy(loaded) == set()
    assert "asyncio" not in loaded  # 35 ms: only the commands that run a loop import it


def test_importing_jobcast_loads_only_the_errors():
    loaded = _loaded("import jobcast")
    assert _heavy(loaded) == set()
    assert "jobcast.client" not in loaded


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["ls", "--help"], ["serve", "--version-not-an-option"]]
)
def test_commands_that_need_no_server_load_nothing_heavy(argv):
    loaded = _loaded("from jobcast.cli import main\nmain()", *argv)
    if argv[0] == "serve":
        # serve's options are its settings: pydantic, but never the server until it starts
        assert "pydantic" in loaded
        assert not {m for m in loaded if m.startswith(("aiohttp", "jobcast.api"))}
    else:
        assert _heavy(loaded) == set()


def test_one_shot_commands_use_the_light_client():
    # no server there: the command fails, having loaded what it would use to talk to one
    loaded = _loaded("from jobcast.cli import main\nmain()", "--url", "http://127.0.0.1:1", "ls")
    assert "jobcast.client.plain" in loaded
    assert _heavy(loaded) == set()


# (not `logs` nor `watch`: against no server, they go on trying to reconnect)
@pytest.mark.parametrize("argv", [["run", "--", "true"], ["follow", "x"], ["send", "x", "y"]])
def test_streaming_commands_load_neither_websockets_nor_rich(argv):
    # they need the full clients (httpx, the models), but not a WebSocket, nor httpx's own CLI
    loaded = _loaded("from jobcast.cli import main\nmain()", "--url", "http://127.0.0.1:1", *argv)
    assert "httpx" in loaded
    assert not {m for m in loaded if m.startswith(("websockets", "rich", "pygments", "aiohttp"))}
