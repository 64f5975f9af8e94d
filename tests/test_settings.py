"""Generation settings: every invalid value is refused by name; ignored values are reported."""

import math

import pytest

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be a whole number ≥ 1"),
        ({"max_new_tokens": -5}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"top_p": 1.5, "do_sample": True}, r"top_p must be in \(0, 1\]; got 1.5"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),  # refused under greedy too: generate would silently ignore it
        ({"temperature": 0.0, "do_sample": True}, "temperature must be > 0 when sampling"),
        ({"temperature": -1.0, "do_sample": True}, "temperature"),
        ({"temperature": math.nan}, "temperature must be a number"),
        ({"top_k": -1}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
        ({"num_beams": 0}, "num_beams"),
        ({"num_beams": 4, "do_sample": True}, "beam search"),
        ({"seed": -3}, "seed"),
        ({"min_new_tokens": 50, "max_new_tokens": 10}, "min_new_tokens"),
        ({"stop": ("",)}, "stop"),
        ({"do_sample": "yes"}, "do_sample"),
    ],
)
def test_invalid_settings_are_refused_with_the_field_named(values, message):
    with pytest.raises(PromptLabError, match=message):
        GenerationSettings(**values)


def test_temperature_zero_is_fine_for_greedy_but_reported_as_ignored():
    settings = GenerationSettings(temperature=0.0)
    assert settings.ignored() == [
        "temperature=0.0 is ignored: greedy decoding always takes the most likely token "
        "(turn sampling on to use it)."
    ]


def test_ignored_lists_only_changed_sampling_settings_and_nothing_when_sampling():
    greedy = GenerationSettings(top_k=10, top_p=0.9)
    assert [s.split("=")[0] for s in greedy.ignored()] == ["top_k", "top_p"]
    assert GenerationSettings().ignored() == []
    assert GenerationSettings(do_sample=True, top_k=10, top_p=0.9).ignored() == []


def test_greedy_kwargs_leave_sampling_settings_out():
    kwargs = GenerationSettings(temperature=0.3, top_k=5).generate_kwargs()
    assert kwargs["do_sample"] is False
    assert not {"temperature", "top_k", "top_p"} & set(kwargs)


def test_sampling_kwargs_pass_every_sampling_setting_explicitly():
    kwargs = GenerationSettings(
        do_sample=True, temperature=0.7, top_k=0, top_p=0.9
    ).generate_kwargs()
    assert (kwargs["temperature"], kwargs["top_k"], kwargs["top_p"]) == (0.7, 0, 0.9)


def test_dict_round_trip_and_unknown_keys():
    settings = GenerationSettings(do_sample=True, temperature=0.5, stop=("\n", "END"))
    assert GenerationSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(PromptLabError, match="Unknown generation setting.*top_q"):
        GenerationSettings.from_dict({"top_q": 0.5})
