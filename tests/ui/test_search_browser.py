"""The Search page in a real browser: opened by a direct link with an empty library, it says what
to do; with a saved version, a tiny search started from the form is followed live to its result
(the curve and the verdict), with no exception element on the way. Screenshots beside the others."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from core.generation.settings import GenerationSettings
from core.library import versions
from core.prompting.design import PromptDesign
from tests.ui.browser import (
    MODEL_TIMEOUT_S,
    VIEWPORT,
    AppServer,
    explained,
    open_page,
    serve_app,
    snap,
    wait_idle,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with serve_app(tmp_path_factory.mktemp("search-app")) as srv:
        yield srv


@pytest.fixture
def page(browser, server: AppServer):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def no_exception(page) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, shown.first.inner_text()


def test_the_search_page_renders_and_follows_a_search_to_its_result(page, server) -> None:
    main = page.locator('[data-testid="stMain"]')
    with explained(server, page, "search-empty-library"):
        open_page(page, server, "/search")
        assert main.get_by_role("heading", name="Search").first.is_visible()
        assert main.get_by_text("the library has none yet").is_visible()
        no_exception(page)
        snap(page, "search-empty")

    with explained(server, page, "search-start"):
        design = PromptDesign(instruction="Summarise the dialogue in one sentence.")
        settings = GenerationSettings(max_new_tokens=8)
        versions.save_version("summary", design, settings, db_url=server.db_url)
        open_page(page, server, "/search")
        main.get_by_role("spinbutton", name="Examples (0 = all)").fill("6")
        main.get_by_role("spinbutton", name="Designs (0 = minutes only)").fill("3")
        main.get_by_role("button", name="Start search").click()
        main.get_by_text("Completed: 3 of 3 designs tried").wait_for(
            state="visible", timeout=MODEL_TIMEOUT_S * 1000
        )
        wait_idle(page)
        # The whole page runs again when the search ends: the list of searches says so too.
        listed = main.locator('[data-testid="stDataFrame"]').first.locator("td")
        wait_until(
            lambda: "completed" in listed.all_text_contents(), 15, "the list says completed", page
        )
        assert main.locator('[data-testid="stPlotlyChart"]').count() == 1
        verdict = re.compile(r"On \d+ locked test examples|the base stays")
        assert main.get_by_text(verdict).first.is_visible()  # the result's sentence
        assert main.get_by_role("button", name="Open the study in Compare").is_visible()
        no_exception(page)
        snap(page, "search-result")
