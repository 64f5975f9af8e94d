"""The Playground's variants in a real browser, as a new user meets them: zero shots beside three
shots as chat turns on one dialogue, run side by side; then tried on five examples with the
paired verdict; then the study opened in Compare. Screenshots of each step go where the other
pages' go; the time from opening the page to the two answers is written beside them."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from storage import queries
from storage.db import session_scope
from storage.schema import StudyRecord
from tests.ui.browser import (
    MODEL_TIMEOUT_S,
    VIEWPORT,
    AppServer,
    explained,
    open_page,
    screenshots_dir,
    serve_app,
    snap,
    wait_idle,
)
from tests.ui.test_browser import commit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with serve_app(tmp_path_factory.mktemp("variants-app")) as srv:
        yield srv


@pytest.fixture
def page(browser, server: AppServer):
    context = browser.new_context(viewport={**VIEWPORT, "width": 1600})
    yield context.new_page()
    context.close()


def keyed(page, key: str):
    """The element of the widget with this key: Streamlit marks it with the class st-key-<key>,
    each character other than a letter, digit, _ or - made a -."""
    return page.locator(f".st-key-{re.sub(r'[^a-zA-Z0-9_-]', '-', key)}")


def test_two_variants_side_by_side_then_on_five_examples_then_in_compare(page, server) -> None:
    main = page.locator('[data-testid="stMain"]')
    with explained(server, page, "open-and-compose"):
        started = time.perf_counter()
        open_page(page, server, "/", timeout_s=MODEL_TIMEOUT_S)
        commit(page, page.get_by_role("spinbutton", name="max_new_tokens"), "24")
        main.get_by_role("button", name="Add variant").click()
        keyed(page, "keep.playground.v2.variant_name").wait_for(timeout=60_000)
        wait_idle(page)
        commit(page, keyed(page, "keep.playground.v2.variant_name").locator("input"), "3 as turns")
        commit(page, keyed(page, "keep.playground.v2.shots").locator("input"), "3")
        # The list opens on typing (a click only focuses it).
        shot_format = keyed(page, "keep.playground.v2.shot_format").get_by_role("combobox")
        shot_format.click()
        shot_format.press_sequentially("turns", delay=50)
        page.get_by_role("option", name=re.compile(r"^turns")).click()
        wait_idle(page)

    with explained(server, page, "run-all"):
        page.get_by_role("heading", name="Playground").click()  # focus on no field
        page.keyboard.press("Control+Enter")  # Run all's shortcut
        finished = main.get_by_text("finished by")
        deadline = time.monotonic() + MODEL_TIMEOUT_S * 2
        while finished.count() < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert finished.count() == 2, main.inner_text()
        to_answers = time.perf_counter() - started
        wait_idle(page)
        text = main.inner_text()
        assert "rougeL" in text and "Stored as study" in text, text
        assert not main.locator('[data-testid="stAlertContentError"]').count(), text
        snap(page, "playground-variants")
        (screenshots_dir() / "playground-variants-timing.txt").write_text(
            f"opening the Playground to two answers, side by side: {to_answers:.1f} s\n"
        )

    with explained(server, page, "try-on-five"):
        main.get_by_role("button", name="Try on 5 examples").click()
        verdict = main.get_by_text(re.compile(r"Paired over the 5 examples"))
        verdict.wait_for(timeout=MODEL_TIMEOUT_S * 4 * 1000)
        wait_idle(page)
        text = main.inner_text()
        assert "A: mean ROUGE-L" in text and "3 as turns: mean ROUGE-L" in text, text
        assert re.search(r"(better than|No reliable difference)", text), text
        snap(page, "playground-trial")

    with explained(server, page, "open-compare"):
        main.get_by_role("button", name="Open in Compare").click()
        page.get_by_role("heading", name="Compare").wait_for(timeout=60_000)
        main.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="visible")
        wait_idle(page)
        with session_scope(server.db_url) as session:
            trial = max(session.query(StudyRecord).all(), key=lambda s: s.id)
            ids = [r.id for r in queries.list_experiments(session=session, study_id=trial.id)]
        chosen = main.locator('[data-testid="stMultiSelect"]').inner_text()
        for experiment_id in ids:
            assert f"#{experiment_id}" in chosen, (experiment_id, chosen)
        snap(page, "playground-compare")


def test_stop_ends_every_stream_and_stores_nothing(page, server) -> None:
    main = page.locator('[data-testid="stMain"]')

    def stored() -> int:
        with session_scope(server.db_url) as session:
            return len(queries.list_experiments(session=session))

    with explained(server, page, "stop-variants"):
        open_page(page, server, "/", timeout_s=MODEL_TIMEOUT_S)
        if not keyed(page, "keep.playground.v2.variant_name").count():
            main.get_by_role("button", name="Add variant").click()
            keyed(page, "keep.playground.v2.variant_name").wait_for(timeout=60_000)
        wait_idle(page)
        before = stored()
        # A's answer: 4096 tokens at the least, minutes on a CPU, so it still streams at Stop.
        main.get_by_text("Generation settings").first.click()
        commit(page, keyed(page, "keep.playground.max_new_tokens").locator("input"), "4096")
        main.get_by_text("More", exact=True).first.click()
        commit(page, keyed(page, "keep.playground.min_new_tokens").locator("input"), "4096")
        main.get_by_role("button", name="Run all").click()
        stop = main.get_by_role("button", name="Stop", exact=True)
        stop.wait_for(state="visible", timeout=MODEL_TIMEOUT_S * 1000)
        main.locator(".st-key-variant-output-0 [data-testid='stText']").first.wait_for(
            timeout=MODEL_TIMEOUT_S * 1000
        )  # A's answer has begun
        stop.click()
        main.get_by_text("Stopped: the answers were cut short").wait_for(timeout=60_000)
        wait_idle(page)
        assert stored() == before
        assert not main.get_by_text("finished by").count()
