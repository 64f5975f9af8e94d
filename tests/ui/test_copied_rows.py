"""The Experiments page says how many of an experiment's answers were copied from an identical
prompt of its study (core.runs.reuse), in AppTest on a real SQLite file and a tiny real model."""

from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.runs.experiments import RunSpec
from tests.test_reuse import GIVEN, REVERSED, run, study
from tests.ui.shown import unescaped

pytestmark = pytest.mark.slow  # the page renders prompts with SmolLM2's tokenizer
APP = str(Path(__file__).resolve().parents[2] / "app.py")
K = "keep.experiments."


def test_an_experiment_with_copied_answers_says_how_many(db, tiny_causal_dir):
    spec = RunSpec(
        model=ModelRequest(str(tiny_causal_dir), device="cpu"),
        design=GIVEN,
        settings=GenerationSettings(max_new_tokens=6),
    )
    study_id = study(db)
    first = run(db, spec, study_id, reuse=True)  # generated
    second = run(db, replace(spec, design=REVERSED), study_id, reuse=True)  # the same prompts
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/experiments.py").run()
    at.multiselect(key=K + "selected").set_value([second]).run()
    assert not at.exception
    captions = [unescaped(c.value) for c in at.caption]
    assert any("3/3 examples · 3 copied from identical prompts ·" in c for c in captions)
    at.multiselect(key=K + "selected").set_value([first]).run()
    assert not any("copied" in unescaped(c.value) for c in at.caption)
