"""The sign-in gate in Streamlit's AppTest: with an [auth] secrets section every page shows only
a sign-in until someone is signed in, an address off the allow-list only a refusal; without
one, nothing changes. (tests/ui/test_login.py signs in for real, through a browser.)"""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.policy import signed_in_actor
from core.runs import experiments
from storage import queries
from storage.db import session_scope
from tests.ui.shown import unescaped

APP = str(Path(__file__).resolve().parents[2] / "app.py")
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-secret-only-a-test",
    "client_id": "prompt-lab",
    "client_secret": "test",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ALICE = {"is_logged_in": True, "email": "Alice@Example.org", "name": "Alice Liddell"}


@pytest.fixture
def app(db, monkeypatch):
    monkeypatch.delenv("PROMPT_LAB_ALLOWED_USERS", raising=False)
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = AUTH
    return at


def shown_text(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "markdown", "error", "caption") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", ["pages/playground.py", "pages/compare.py", "pages/datasets.py"])
def test_signed_out_every_page_shows_only_the_sign_in(app, page):
    app.user = {"is_logged_in": False}
    app.switch_page(page).run()
    assert not app.exception
    assert [t.value for t in app.title] == ["Prompt Lab"]
    assert [b.label for b in app.button] == ["Sign in"]
    assert "sign in to use it" in shown_text(app)
    assert not app.dataframe and not app.text_area and not app.selectbox


def test_signed_in_the_page_runs_with_the_user_and_sign_out_in_the_sidebar(app):
    app.user = ALICE
    app.switch_page("pages/datasets.py").run()
    assert not app.exception
    assert [t.value for t in app.title] == ["Datasets"]
    sidebar = [e.value for e in app.sidebar.get("markdown")] + [
        c.value for c in app.sidebar.get("caption")
    ]
    assert "**Alice Liddell**" in sidebar and any("alice@example" in s for s in sidebar)
    assert "Sign out" in [b.label for b in app.sidebar.button]


def test_an_address_off_the_allow_list_sees_only_a_refusal_naming_it(app, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_ALLOWED_USERS", "bob@example.org, @example.com")
    app.user = ALICE
    app.switch_page("pages/datasets.py").run()
    assert not app.exception
    (refusal,) = app.error
    assert "alice@example" in refusal.value and "not on the list of allowed users" in refusal.value
    assert [b.label for b in app.button] == ["Sign out"]
    assert [t.value for t in app.title] == ["Prompt Lab"]
    assert not app.dataframe


def test_an_address_on_the_allow_list_by_its_domain_gets_in(app, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_ALLOWED_USERS", "@example.org")
    app.user = ALICE
    app.switch_page("pages/datasets.py").run()
    assert not app.exception and [t.value for t in app.title] == ["Datasets"]


def test_a_sign_in_without_an_email_address_is_refused_with_the_reason(app):
    app.user = {"is_logged_in": True, "name": "No Mail"}
    app.switch_page("pages/datasets.py").run()
    assert not app.exception
    assert "did not say your e-mail address" in unescaped(app.error[0].value)
    assert [b.label for b in app.button] == ["Sign out"]


def test_without_auth_secrets_nothing_asks_to_sign_in(db):
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Datasets"]
    assert not [b for b in at.button if b.label in ("Sign in", "Sign out")]


def test_the_experiments_list_shows_who_created_each_and_refuses_deleting_anothers(app, db):
    spec = experiments.RunSpec(limit=1)
    mine = experiments.create(spec, db_url=db, actor=signed_in_actor("alice@example.org"))
    theirs = experiments.create(spec, db_url=db, actor=signed_in_actor("bob@example.org"))
    app.user = ALICE
    app.switch_page("pages/experiments.py").run()
    assert not app.exception
    listed = app.dataframe[-1].value
    assert dict(zip(listed["id"], listed["created_by"], strict=True)) == {
        mine: "alice@example.org",
        theirs: "bob@example.org",
    }
    app.toggle(key="keep.experiments.f.mine").set_value(True).run()
    assert list(app.dataframe[-1].value["id"]) == [mine]
    app.toggle(key="keep.experiments.f.mine").set_value(False).run()
    app.multiselect(key="keep.experiments.selected").set_value([theirs]).run()
    next(c for c in app.checkbox if c.label.startswith("Yes, delete")).check().run()
    next(b for b in app.button if b.label == "Delete for good").click().run()
    assert not app.exception
    assert any(
        f"You can delete only what you created: experiment {theirs} was created by "
        "bob@example.org." in unescaped(e.value)
        for e in app.error
    )
    with session_scope(db) as session:
        assert sorted(r.id for r in queries.list_experiments(session=session)) == [mine, theirs]


@pytest.fixture
def listening_on_every_interface():
    """As if started with `streamlit run app.py --server.address 0.0.0.0`, around `make run`."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def test_beyond_loopback_without_sign_in_every_page_shows_only_how_to_fix_it(
    db, monkeypatch, listening_on_every_interface
):
    monkeypatch.delenv("PROMPT_LAB_INSECURE_NO_LOGIN", raising=False)
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    for page in ("pages/playground.py", "pages/datasets.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert [t.value for t in at.title] == ["Prompt Lab"]
        message = unescaped(at.error[0].value)
        assert message.startswith("Prompt Lab is listening on 0.0.0.0 with no sign-in")
        assert "make run" in message and not at.button


def test_beyond_loopback_the_operators_accepted_risk_or_sign_in_opens_the_gate(
    app, db, monkeypatch, listening_on_every_interface
):
    app.switch_page("pages/datasets.py").run()  # sign-in set up: the sign-in, no refusal
    assert [b.label for b in app.button] == ["Sign in"] and not app.error
    monkeypatch.setenv("PROMPT_LAB_INSECURE_NO_LOGIN", "1")
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Datasets"]
