"""The Playground page in Streamlit's AppTest, on the real embedded model."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import models

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=120)
    yield at
    models.unload()


def test_playground_shows_the_exact_prompt_and_runs_it(app):
    app.run()
    assert not app.exception
    sent = app.code[0].value
    assert sent.startswith("<|im_start|>system") and "Summarize the following conversation." in sent
    assert "tokens (" in app.caption[0].value
    app.button[0].click().run()
    assert not app.exception and not app.error
    answer = app.text[-1].value
    assert answer.strip()
    assert "finished by" in app.caption[-1].value


def test_template_without_input_placeholder_shows_a_message_not_a_traceback(app):
    app.run()
    app.text_area[1].set_value("Dialogue without a placeholder").run()
    assert not app.exception
    assert "{input}" in app.error[0].value


def test_sampling_controls_are_disabled_under_greedy(app):
    app.run()
    assert all(s.disabled for s in app.sidebar.slider)
    app.sidebar.toggle[0].set_value(True).run()
    assert not any(s.disabled for s in app.sidebar.slider)
