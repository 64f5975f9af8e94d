"""The operator's policy as read from the environment (core/policy.py): defaults, parsing, the
sentences a malformed value gives, the sign-in allow-list and who may change what."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import policy
from core.errors import PromptLabError
from core.policy import Actor, Policy


@pytest.fixture(autouse=True)
def unset(monkeypatch):
    for variable in policy.VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)


def test_nothing_set_is_the_safe_default(monkeypatch):
    monkeypatch.setenv("HF_HOME", "/srv/hf")
    rules = policy.current()
    assert rules.allow_remote_code is False and rules.hub_downloads is True
    assert rules.model_roots == (Path("/srv/hf/hub"), policy.PROJECT / "models")
    assert (rules.max_upload_mb, rules.max_examples_per_run, rules.max_runs_per_user) == (50, 0, 0)
    assert rules.key_variables == rules.endpoint_hosts == rules.allowed_users == ()


def test_values_are_read_each_time_and_parsed(monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_ALLOW_REMOTE_CODE", " Yes ")
    monkeypatch.setenv("PROMPT_LAB_HUB_DOWNLOADS", "off")
    monkeypatch.setenv("PROMPT_LAB_MODEL_ROOTS", os.pathsep.join(["/models", "~/more", ""]))
    monkeypatch.setenv("PROMPT_LAB_KEY_VARIABLES", "VLLM_API_KEY, ,OTHER")
    monkeypatch.setenv("PROMPT_LAB_ENDPOINT_HOSTS", "GPU-Node.internal,localhost")
    monkeypatch.setenv("PROMPT_LAB_MAX_UPLOAD_MB", "2.5")
    monkeypatch.setenv("PROMPT_LAB_MAX_EXAMPLES_PER_RUN", "200")
    rules = policy.current()
    assert rules.allow_remote_code is True and rules.hub_downloads is False
    assert rules.model_roots == (Path("/models"), Path("~/more").expanduser())
    assert rules.key_variables == ("VLLM_API_KEY", "OTHER")  # names keep their case
    assert rules.endpoint_hosts == ("gpu-node.internal", "localhost")
    assert (rules.max_upload_mb, rules.max_examples_per_run) == (2.5, 200)
    monkeypatch.setenv("PROMPT_LAB_MAX_EXAMPLES_PER_RUN", "5")
    assert policy.current().max_examples_per_run == 5


@pytest.mark.parametrize(
    "variable, raw, message",
    [
        ("PROMPT_LAB_ALLOW_REMOTE_CODE", "maybe", "must be 1 or 0 (true or false); got 'maybe'"),
        ("PROMPT_LAB_HUB_DOWNLOADS", "2", "must be 1 or 0"),
        ("PROMPT_LAB_INSECURE_NO_LOGIN", "sure", "must be 1 or 0"),
        ("PROMPT_LAB_MAX_UPLOAD_MB", "fifty", "must be a number; got 'fifty'"),
        ("PROMPT_LAB_MAX_UPLOAD_MB", "-1", "cannot be negative; got '-1'"),
        ("PROMPT_LAB_MAX_EXAMPLES_PER_RUN", "2.5", "must be a number; got '2.5'"),
        ("PROMPT_LAB_MAX_RUNS_PER_USER", "-3", "cannot be negative"),
    ],
)
def test_a_malformed_value_is_a_sentence_naming_its_variable(monkeypatch, variable, raw, message):
    monkeypatch.setenv(variable, raw)
    with pytest.raises(PromptLabError) as refused:
        policy.current()
    assert str(refused.value).startswith(variable) and message in str(refused.value)


def test_anyone_signed_in_is_allowed_when_no_list_is_set():
    assert policy.user_allowed(Policy(), "someone@anywhere.org")


def test_the_allow_list_takes_addresses_and_at_domains():
    rules = Policy(allowed_users=("ana@lab.org", "@team.example"))
    assert policy.user_allowed(rules, "ana@lab.org")
    assert policy.user_allowed(rules, " Ana@Lab.ORG ")  # as the variable is read: lower case
    assert policy.user_allowed(rules, "bo@team.example")
    assert not policy.user_allowed(rules, "bo@lab.org")
    assert not policy.user_allowed(rules, "ana@lab.org.evil.example")
    assert not policy.user_allowed(rules, "bo@sub.team.example")  # a domain is not its subdomains
    assert not policy.user_allowed(rules, "team.example")
    assert not policy.user_allowed(rules, None) and not policy.user_allowed(rules, "")


def test_the_allow_list_from_the_environment_is_case_blind(monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_ALLOWED_USERS", "Ana@Lab.org, @Team.Example")
    assert policy.current().allowed_users == ("ana@lab.org", "@team.example")
    assert policy.user_allowed(policy.current(), "ANA@lab.org")


def test_a_local_actor_changes_anything_a_signed_in_one_only_their_own():
    local = Actor("me")
    assert local.may_change("someone else") and local.may_change(None)
    ana = Actor("ana@lab.org", signed_in=True)
    assert ana.may_change("ana@lab.org")
    assert not ana.may_change("bo@lab.org")
    assert not ana.may_change(None)  # made before owners: only an admin
    admin = Actor("root@lab.org", signed_in=True, admin=True)
    assert admin.may_change("bo@lab.org") and admin.may_change(None)


def test_admins_are_named_in_the_environment(monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_ADMINS", "Root@Lab.org")
    assert policy.signed_in_actor(" ROOT@lab.org ").admin
    assert not policy.signed_in_actor("ana@lab.org").admin
    assert policy.signed_in_actor("ana@lab.org").name == "ana@lab.org"
