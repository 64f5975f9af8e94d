"""The baseline view in a real browser: two stored experiments picked on the Compare page, one
pinned as the baseline, the examples narrowed to what got worse than it. Its screenshot goes
where the other pages' go, as compare-baseline.png."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment
from tests.ui.browser import (
    VIEWPORT,
    AppServer,
    explained,
    open_page,
    screenshots_dir,
    serve_app,
    wait_idle,
)
from tests.ui.test_blind_ab_browser import pick

pytestmark = pytest.mark.slow
LABELS = ("baseline prompt", "shorter prompt")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with serve_app(tmp_path_factory.mktemp("baseline-app")) as srv:
        first = store_experiment(srv.db_url, [0.4] * 5, limit=5, label="for its references")
        with session_scope(srv.db_url) as session:
            results = queries.results_of(session=session, experiment_id=first)
            queries.delete_experiments(session=session, experiment_ids=[first])
        references = [r.reference for r in results]
        store_experiment(
            srv.db_url, [0.42, 0.35, 0.51, 0.38, 0.44], outputs=references, limit=5, label=LABELS[0]
        )
        shorter = [text.split(",")[0] + "." for text in references]
        store_experiment(
            srv.db_url, [0.44, 0.12, 0.49, 0.21, 0.45], outputs=shorter, limit=5, label=LABELS[1]
        )
        yield srv


def test_the_examples_narrow_to_what_got_worse_than_the_baseline(browser, server) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    main = page.locator('[data-testid="stMain"]')
    examples = page.locator(".st-key-compare-examples")
    try:
        with explained(server, page, "pin-baseline"):
            open_page(page, server, "/compare")
            for label in LABELS:
                pick(page, label)
            field = main.get_by_role("combobox", name="Baseline")
            field.click()
            field.press_sequentially(LABELS[0], delay=30)
            page.get_by_role("option").filter(has_text=LABELS[0]).first.click()
            wait_idle(page)
            main.get_by_text("Difference from the baseline").wait_for(timeout=60_000)
        with explained(server, page, "worse-only"):
            examples.get_by_text("Only what got worse than the baseline").click()
            examples.get_by_text("2 of 5 examples where a variant scores lower").wait_for(
                timeout=60_000
            )
            wait_idle(page)
            shown = examples.inner_text()
            assert "worse than the baseline by 0.230" in shown, shown
            assert "worse than the baseline by 0.170" in shown, shown
            page.set_viewport_size({"width": VIEWPORT["width"], "height": 2400})  # all of it
            examples.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            examples.screenshot(
                path=screenshots_dir() / "compare-baseline.png", animations="disabled"
            )
    finally:
        context.close()
