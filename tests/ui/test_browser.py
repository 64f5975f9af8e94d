"""The app in a real browser, as a new user meets it: `streamlit run app.py` driven by Chromium.

Screenshots of every page go to $PROMPT_LAB_SCREENSHOTS (default artifacts/screenshots), which
.ci/run lists at the end of its log. Needs Debian's chromium at /usr/bin/chromium; without it
the tests fail with the install command (they are never skipped).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import queries
from storage.db import session_scope
from tests.ui.browser import (
    MODEL_TIMEOUT_S,
    VIEWPORT,
    AppServer,
    click_nav,
    explained,
    open_page,
    serve_app,
    snap,
    wait_idle,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with serve_app(tmp_path_factory.mktemp("browser-app")) as srv:
        yield srv


@pytest.fixture
def page(browser, server: AppServer):
    """A fresh browser context per test: a new user with no session state."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield context.new_page()
    context.close()


def test_a_new_user_runs_a_one_shot_prompt(page, server: AppServer) -> None:
    with explained(server, page, "open-playground"):
        # The first run of the Playground loads the embedded model in the server.
        open_page(page, server, "/", timeout_s=MODEL_TIMEOUT_S)
        assert page.get_by_role("heading", name="Playground").is_visible()
        snap(page, "playground")

    with explained(server, page, "compose-one-shot"):
        commit(page, page.get_by_role("spinbutton", name=re.compile(r"^Shots")), "1")

    with explained(server, page, "run"):
        page.get_by_role("button", name="Run", exact=True).click()
        finished = page.get_by_text("finished by")
        finished.first.wait_for(state="visible", timeout=MODEL_TIMEOUT_S * 1000)
        wait_idle(page)
        output = page.locator(".st-key-playground-output").inner_text().strip()
        assert output, "the Playground showed an empty answer"
        snap(page, "playground-run")


@pytest.mark.parametrize(("title", "name"), [("Datasets", "datasets"), ("Models", "models")])
def test_page_opens_from_the_sidebar(page, server: AppServer, title: str, name: str) -> None:
    with explained(server, page, f"open-{name}"):
        open_page(page, server, "/", timeout_s=MODEL_TIMEOUT_S)
        click_nav(page, title)
        assert page.url.rstrip("/").endswith(f"/{name}")
        assert page.get_by_role("heading", name=title).first.is_visible()
        snap(page, name)


def test_a_sweep_is_run_compared_and_its_wide_csv_downloaded(
    page, server: AppServer, tmp_path: Path
) -> None:
    """A sweep of 0 and 1 shots over 3 examples from the Experiments page, compared as a study;
    the side-by-side (wide) CSV has a header and one row per example with each variant's output."""
    main = page.locator('[data-testid="stMain"]')
    with explained(server, page, "compose-sweep"):
        open_page(page, server, "/", timeout_s=MODEL_TIMEOUT_S)
        click_nav(page, "Experiments")
        commit(page, main.get_by_role("spinbutton", name=re.compile(r"^Examples")), "3")
        commit(page, main.get_by_role("spinbutton", name="max_new_tokens"), "32")
        # The multiselect's list opens on typing (a click only focuses it).
        vary = main.get_by_role("combobox", name=re.compile(r"^Vary"))
        vary.click()
        vary.press_sequentially("shots", delay=50)
        page.get_by_role("option", name="shots", exact=True).click()
        page.keyboard.press("Escape")
        wait_idle(page)
        commit(page, main.get_by_role("textbox", name=re.compile(r"^Values of shots")), "0, 1")
        commit(page, main.get_by_role("textbox", name=re.compile(r"^Label")), "browser sweep")
        planned = "2 experiment(s) × 3 example(s) = 6 generations."
        main.get_by_text(planned).wait_for(state="visible")

    with explained(server, page, "run-sweep"):
        main.get_by_role("button", name="Start", exact=True).click()
        # The jobs panel refreshes every second and says "…: completed, N / N examples stored."
        stored = main.get_by_text(re.compile(r"completed, (\d+) / \1 examples stored"))
        stored.first.wait_for(state="visible", timeout=MODEL_TIMEOUT_S * 2 * 1000)
        wait_idle(page)
        assert not main.locator('[data-testid="stAlertContentError"]').count(), main.inner_text()
        snap(page, "experiments")

    with explained(server, page, "open-compare"):
        click_nav(page, "Compare")
        page.get_by_text("A study", exact=True).click()
        page.wait_for_timeout(300)
        wait_idle(page)
        study = main.locator('[data-testid="stSelectbox"]').filter(has_text="Study")
        assert "browser sweep" in study.inner_html(), "the sweep's study is not the one shown"
        download = main.get_by_role("button", name="Download side-by-side CSV")
        download.wait_for(state="visible")
        main.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="visible")
        snap(page, "compare")

    with explained(server, page, "download-wide-csv"):
        with page.expect_download() as info:
            download.click()
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
        header, rows = read_csv(saved)
        outputs = [column for column in header if re.fullmatch(r"e\d+ output", column)]
        ids = [column.split()[0] for column in outputs]
        assert saved.name == f"compare-{'-'.join(ids)}-side-by-side.csv", (saved.name, header)
        assert header[:2] == ["example_key", "reference"], header
        assert len(outputs) == 2, f"expected an output column per variant (2): {header}"
        assert len(rows) == 3, f"expected one row per example (3), got {len(rows)}: {rows}"
        assert len({row["example_key"] for row in rows}) == 3, rows
        assert all(row["reference"].strip() for row in rows), rows
        for column in outputs:
            assert any(row[column].strip() for row in rows), f"{column} is empty in every row"


def commit(page, field, value: str) -> None:
    """Type into a Streamlit text or number input and commit it (Enter), then let it rerun."""
    field.fill(value)
    field.press("Enter")
    page.wait_for_timeout(300)
    wait_idle(page)
    assert field.input_value() == value, f"{field} shows {field.input_value()!r}, not {value!r}"


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_a_direct_link_to_a_fresh_server_opens_the_page_inside_the_app(
    browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The first request a server gets is /compare (a bookmark, a tab left open over a restart):
    the page must come with app.py's navigation and layout, not Streamlit's legacy pages mode."""
    with serve_app(tmp_path_factory.mktemp("direct-link")) as fresh:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        try:
            with explained(fresh, page, "direct-link"):
                open_page(page, fresh, "/compare")
                assert page.get_by_role("heading", name="Compare").first.is_visible()
                nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
                assert "Playground" in nav and "Experiments" in nav, nav
                assert "app" not in nav.split(), nav  # the legacy mode lists app.py as "app"
        finally:
            context.close()


def test_stop_ends_a_streamed_answer_and_frees_the_model_for_the_next_run(
    page, server: AppServer
) -> None:
    def stored() -> int:
        with session_scope(server.db_url) as session:
            return len(queries.list_experiments(session=session))

    with explained(server, page, "stop-a-stream"):
        open_page(page, server, "/", timeout_s=MODEL_TIMEOUT_S)
        before = stored()
        # 4096 tokens at the least: minutes on a CPU, so the answer is still streaming at Stop.
        commit(page, page.get_by_role("spinbutton", name="max_new_tokens"), "4096")
        page.get_by_text("More", exact=True).click()
        commit(page, page.get_by_role("spinbutton", name="min_new_tokens"), "4096")
        page.get_by_role("button", name="Run", exact=True).click()
        stop = page.get_by_role("button", name="Stop", exact=True)
        stop.wait_for(state="visible", timeout=MODEL_TIMEOUT_S * 1000)
        output = page.locator(".st-key-playground-output [data-testid='stText']").first
        output.wait_for(timeout=MODEL_TIMEOUT_S * 1000)  # the answer has begun
        stop.click()
        page.get_by_text("Stopped: the answer was cut short").wait_for(timeout=60_000)
        wait_idle(page)
        assert stored() == before

    with explained(server, page, "run-after-stop"):
        commit(page, page.get_by_role("spinbutton", name="min_new_tokens"), "0")
        commit(page, page.get_by_role("spinbutton", name="max_new_tokens"), "8")
        page.get_by_role("button", name="Run", exact=True).click()
        # Had the stopped stream kept the generation lock, this run would wait for its 4096.
        page.get_by_text("finished by").first.wait_for(timeout=MODEL_TIMEOUT_S * 1000)
        assert stored() == before + 1
