"""The blind A/B mode in a real browser: two stored experiments picked on the Compare page, one
example judged without their names, then named. Its screenshot (before the choice) goes where
the other pages' go, as blind-ab.png."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage import queries
from storage.db import session_scope
from tests.test_judgements import store_judged
from tests.ui.browser import (
    VIEWPORT,
    AppServer,
    explained,
    open_page,
    screenshots_dir,
    serve_app,
    wait_idle,
)

pytestmark = pytest.mark.slow
LABELS = ("terse summaries", "chatty summaries")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with serve_app(tmp_path_factory.mktemp("blind-ab-app")) as srv:
        store_judged(
            srv.db_url,
            LABELS[0],
            ["The train is late.", "Person2 wants tea.", "They meet at six."],
            [0.62, 0.55, 0.71],
        )
        store_judged(
            srv.db_url,
            LABELS[1],
            [
                "Person1 asks whether the train is late and Person2 says it is ten minutes late.",
                "Person1 offers tea or coffee, and Person2 politely asks for a cup of tea.",
                "The two agree to see each other at six o'clock at the station.",
            ],
            [0.48, 0.44, 0.52],
            shots=1,
        )
        yield srv


def pick(page, name: str) -> None:
    """Choose one experiment in the picker, as a user does: type, then click the option."""
    field = page.locator('[data-testid="stMain"]').get_by_role(
        "combobox", name="Experiments (two or more)"
    )
    field.click()
    field.press_sequentially(name, delay=30)  # the list opens on typing
    page.get_by_role("option").filter(has_text=name).first.click()
    page.keyboard.press("Escape")
    wait_idle(page)


def test_one_example_is_judged_blind_then_named(browser, server: AppServer) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    blind = page.locator(".st-key-blind-mode")
    try:
        with explained(server, page, "open-blind-ab"):
            open_page(page, server, "/compare")
            for label in LABELS:
                pick(page, label)
            page.locator(".st-key-keep-compare-view").get_by_text("Blind A/B").click()
            blind.get_by_text("0 of 3 judged").wait_for(timeout=60_000)
            wait_idle(page)
            shown = blind.inner_text()
            assert "Output 1" in shown and "Output 2" in shown, shown
            for label in LABELS:
                assert label not in shown, (label, shown)
            assert "#1" not in shown and "#2" not in shown, shown
            page.wait_for_timeout(300)
            blind.screenshot(path=screenshots_dir() / "blind-ab.png", animations="disabled")

        with explained(server, page, "judge-one"):
            blind.get_by_role("button", name="Output 1 is better").click()
            blind.get_by_text("1 of 3 judged").wait_for(timeout=60_000)
            wait_idle(page)
            named = blind.inner_text()
            assert "Output 1 was #" in named and all(label in named for label in LABELS), named
            blind.get_by_role("button", name="Next").click()
            blind.get_by_role("button", name="Output 1 is better").wait_for(timeout=60_000)
            wait_idle(page)
            assert not any(label in blind.inner_text() for label in LABELS)
        with session_scope(server.db_url) as session:
            (made,) = queries.choices_of(session=session)
        assert made.winner == made.shown_left
    finally:
        context.close()
