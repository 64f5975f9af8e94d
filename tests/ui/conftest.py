"""Fixtures for the page tests: a real SQLite file of the test's own, which the app reads from
PROMPT_LAB_DB as it would from the environment of `make run`; and, for the browser tests, one
Chromium per test module."""

import pytest

from tests.ui.browser import open_browser


@pytest.fixture
def db(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path}/lab.sqlite"
    monkeypatch.setenv("PROMPT_LAB_DB", url)
    return url


@pytest.fixture(scope="module")
def browser():
    with open_browser() as b:
        yield b
