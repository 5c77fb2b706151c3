"""The new-job page's chat, direct commands and pastes in a real Chromium against a real server:
a message starts the `chat` template and its answer shows live; a direct command runs a template
from its command line; a paste is stored, listed, and reaches the next chat and job as context;
what the server or the token does not allow is not offered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ServerProcess, wait_job
from tests.web.test_ui_browser import sign_in, wait_terminal

expect.set_options(timeout=20_000)

RUNNER = "tok-runner-0123456789"


def chat_config(data_dir: Path, flag: Path) -> Path:
    """A chat template that answers in two parts, the second once `flag` exists (so a test sees
    the answer grow), with its context file's content between them; and a `greet` template."""
    script = (
        'echo "thinking about: $0"; '
        f"while [ ! -e {flag} ]; do sleep 0.05; done; "
        '[ -n "$JOBCAST_CONTEXT" ] && cat "$JOBCAST_CONTEXT"; echo "the end"'
    )
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(
        "[templates.chat]\n"
        f"command = {json.dumps(['sh', '-c', script, '{message}'])}\n"
        'params.message = { type = "string", max_length = 100000 }\n'
        "[templates.greet]\n"
        'command = ["echo", "hello", "{who}"]\n'
        'params.who = { type = "string", pattern = "[a-z]+" }\n'
        "[[tokens]]\n"
        f'name = "runner"\ntoken = "{RUNNER}"\nscopes = ["run", "read"]\n'
    )
    return cfg


@pytest.fixture
def flag(tmp_path: Path) -> Path:
    return tmp_path / "go"


@pytest.fixture
def chat_server(server_factory: type[ServerProcess], data_dir: Path, flag: Path) -> ServerProcess:
    return server_factory(data_dir, extra=["--config", str(chat_config(data_dir, flag))]).start()


def answer_of(page: Page, job: str) -> str:
    return page.locator(f".answer[data-job='{job}'] .answer-text").text_content() or ""


def test_a_chat_message_starts_a_job_whose_answer_shows_live(
    page: Page, chat_server: ServerProcess, flag: Path
) -> None:
    server = chat_server
    sign_in(page, server, route="#/new")
    page.fill("#chat-message", "what is 6 * 7?")
    page.click("#chat-send")
    answer = page.locator(".answer").first
    expect(answer.locator(".asked")).to_contain_text("what is 6 * 7?")
    expect(answer.locator(".answer-text")).to_have_text("thinking about: what is 6 * 7?\n")
    expect(answer.locator(".badge")).to_have_text("running")  # live: the job goes on
    expect(page.locator("#chat-message")).to_have_value("")
    job = answer.get_attribute("data-job")
    assert job is not None
    with httpx.Client(base_url=server.url, headers=server.headers) as api:
        started = api.get(f"/jobs/{job}").json()
        assert (
            started["argv"][-1] == "what is 6 * 7?"
        )  # the chat template, the message its argument
        flag.touch()
        wait_job(api, job)
    expect(answer.locator(".badge")).to_have_text("succeeded")
    assert answer_of(page, job) == "thinking about: what is 6 * 7?\nthe end\n"  # each part once
    # The answer stays with the tab: there again after the job's page and a reload.
    answer.locator(".answer-head a").click()
    wait_terminal(page, "the end")
    page.go_back()
    page.reload()
    expect(page.locator(f".answer[data-job='{job}'] .answer-text")).to_contain_text("the end")
    assert answer_of(page, job) == "thinking about: what is 6 * 7?\nthe end\n"


def test_a_paste_is_stored_and_goes_to_the_next_chat_and_job_as_context(
    page: Page, chat_server: ServerProcess, flag: Path
) -> None:
    server, text = chat_server, "line one of the paste\nline two\n"
    flag.touch()
    sign_in(page, server, route="#/new")
    page.fill("#paste-text", text)
    page.click("#paste-store")
    item = page.locator("#pastes li[data-ref]")
    expect(item).to_have_count(1)
    ref = item.get_attribute("data-ref")
    assert ref is not None and re.fullmatch(r"ctx://paste/[0-9a-f]{64}", ref)
    expect(item).to_contain_text("line one of the paste")
    expect(item.locator("input[type=checkbox]")).to_be_checked()  # offered for the next one
    assert (
        httpx.get(f"{server.url}/pastes/{ref.rsplit('/', 1)[1]}", headers=server.headers).text
        == text
    )
    # The chat's job sees it: its file is the answer's middle.
    page.fill("#chat-message", "summarise")
    page.click("#chat-send")
    answer = page.locator(".answer").first
    expect(answer.locator(".badge")).to_have_text("succeeded")
    expect(answer.locator(".answer-text")).to_have_text(
        f"thinking about: summarise\n{text}the end\n"
    )
    # And so does a job from the form.
    page.fill("#command", 'cat "$JOBCAST_CONTEXT"')
    page.click("#start")
    page.wait_for_url(re.compile(r"#/jobs/"))
    wait_terminal(page, "line two")
    job = page.url.rsplit("/", 1)[1]
    with httpx.Client(base_url=server.url, headers=server.headers) as api:
        assert api.get(f"/jobs/{job}/log").text == text
    # Unticked, it goes nowhere; the list is this tab's, kept across a reload.
    page.go_back()
    page.reload()
    box = page.locator("#pastes li[data-ref] input[type=checkbox]")
    expect(box).to_be_checked()
    box.uncheck()
    page.fill("#chat-message", "no context")
    page.press("#chat-message", "Control+Enter")  # sends, as the placeholder says
    answer = page.locator(".answer").first
    expect(answer.locator(".asked")).to_contain_text("no context")
    expect(answer.locator(".badge")).to_have_text("succeeded")
    assert answer_of(page, answer.get_attribute("data-job") or "") == (
        "thinking about: no context\nthe end\n"
    )


def test_a_direct_command_runs_a_template_and_a_refusal_is_shown(
    page: Page, chat_server: ServerProcess
) -> None:
    sign_in(page, chat_server, route="#/new")
    expect(page.locator("#direct-help")).to_contain_text("chat, greet")
    page.fill("#direct-command", "greet bob")
    page.click("#direct-run")
    answer = page.locator(".answer").first
    expect(answer.locator(".answer-text")).to_have_text("hello bob\n")
    expect(answer.locator(".badge")).to_have_text("succeeded")
    expect(answer.locator(".asked")).to_contain_text("greet bob")
    page.fill("#direct-command", "greet 'Bob Tables'")
    page.click("#direct-run")
    expect(page.locator("#direct-form .error")).to_contain_text("who")
    expect(page.locator(".answer")).to_have_count(1)  # nothing started
    assert page.locator("#direct-command").input_value() == "greet 'Bob Tables'"  # kept to mend


def test_only_what_the_token_and_the_server_allow_is_offered(
    page: Page, chat_server: ServerProcess, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    # A token with `run` but not `exec`: chat, direct and paste, but no raw command.
    sign_in(page, chat_server, RUNNER, route="#/new")
    expect(page.locator("#chat-message")).to_be_visible()
    expect(page.locator("#direct-command")).to_be_visible()
    expect(page.locator("#paste-text")).to_be_visible()
    expect(page.locator("#job-kind option")).to_have_text(["Template: chat", "Template: greet"])
    # A server without templates: the form and pastes, no chat, no direct commands.
    plain = tmp_path / "plain"
    plain.mkdir()
    server = server_factory(plain).start()
    page.evaluate("sessionStorage.clear()")
    sign_in(page, server, route="#/new")
    expect(page.locator("#paste-text")).to_be_visible()
    expect(page.locator("#command")).to_be_visible()
    expect(page.locator("#chat-panel")).to_have_count(0)
    expect(page.locator("#direct-command")).to_have_count(0)


def test_the_page_opened_while_offline_offers_chat_once_back(
    page: Page, chat_server: ServerProcess
) -> None:
    sign_in(page, chat_server)
    page.context.set_offline(True)
    expect(page.locator(".conn")).to_have_text("offline")
    page.click("#nav-new")  # GET /templates cannot answer
    expect(page.locator(".newjob .error")).to_contain_text("trying again")
    expect(page.locator("#chat-message")).to_have_count(0)
    page.context.set_offline(False)
    expect(page.locator("#chat-message")).to_be_visible()
    expect(page.locator("#job-kind option")).to_have_count(3)  # a command, chat, greet
    expect(page.locator(".newjob .error")).to_be_hidden()
