"""The public surface and the import direction."""

from __future__ import annotations

import subprocess
import sys

import jobcast


def test_all_is_sorted_and_importable():
    assert jobcast.__all__ == sorted(jobcast.__all__, key=str)
    for name in jobcast.__all__:
        assert getattr(jobcast, name) is not None


def test_every_error_is_importable_from_jobcast():
    import jobcast.errors

    errors = [
        name
        for name in jobcast.errors.__all__
        if isinstance(getattr(jobcast.errors, name), type)
        and issubclass(getattr(jobcast.errors, name), Exception)
    ]
    assert len(errors) > 10
    for name in errors:
        assert name in jobcast.__all__
        assert getattr(jobcast, name) is getattr(jobcast.errors, name)


def test_the_data_is_loaded_on_first_use():
    code = "import sys, jobcast; a = 'pydantic' in sys.modules; jobcast.Job; print(a, 'pydantic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def _loaded_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print(' '.join(sorted(sys.modules)))"
    return set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )


def test_clients_load_neither_server_nor_storage():
    for stmt in ("import jobcast", "import jobcast.client", "import jobcast.cli"):
        loaded = _loaded_after(stmt)
        assert not {
            m
            for m in loaded
            if m.startswith(("aiohttp", "sqlite3", "jobcast.api", "jobcast.store"))
        }, stmt


def _imports(module: str) -> set[str]:
    import ast
    import pathlib

    path = pathlib.Path(jobcast.__file__).parent / (module.replace(".", "/") + ".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_pure_modules_import_only_each_other():
    pure = ("errors", "models", "protocol", "extract", "lines", "progress")
    for mod in pure:
        local = {m for m in _imports(mod) if m.startswith(".")}
        assert local <= {f".{p}" for p in pure}, (mod, local)
        assert not {m for m in _imports(mod) if m.split(".")[0] in ("aiohttp", "httpx", "sqlite3")}


def test_only_the_runner_writes_status():
    import pathlib

    src = pathlib.Path(jobcast.__file__).parent
    writers = {
        p.relative_to(src).as_posix() for p in src.rglob("*.py") if "set_status(" in p.read_text()
    }
    # The supervisor runs processes; the tailer "runs" sources (files it follows), nothing else.
    runners = {"runner/supervisor.py", "sources/tailer.py"}
    assert writers <= {*runners, "store/base.py", "store/sqlite.py", "store/redis.py"}, writers
