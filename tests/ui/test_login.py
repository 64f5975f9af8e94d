"""Signing in for real: `streamlit run app.py` with an [auth] section pointing at a real OpenID
Connect provider on loopback (oidc-provider-mock, in this process), driven by Chromium.

The provider's authorization form takes the user's subject; the two users below are known to
it with their e-mail and name. The app's secrets live in a temporary file named on its command
line (--secrets.files), never in the repository. Screenshots as in test_browser.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import werkzeug.serving
from oidc_provider_mock import User
from oidc_provider_mock import app as provider_app

from tests.ui.browser import (
    MODEL_TIMEOUT_S,
    PAGE_TIMEOUT_S,
    VIEWPORT,
    AppServer,
    explained,
    open_page,
    serve_app,
    snap,
    wait_idle,
)

pytestmark = pytest.mark.slow

ALICE = User(
    sub="alice@example.org", claims={"email": "alice@example.org", "name": "Alice Liddell"}
)
MALLORY = User(
    sub="mallory@example.com", claims={"email": "mallory@example.com", "name": "Mallory"}
)
# Streamlit puts its own port in for {port}: the redirect URI must name the port the app is on.
SECRETS = """[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "a-random-string-for-the-test-only-0123456789"
client_id = "prompt-lab"
client_secret = "any: the mock provider accepts every client"
server_metadata_url = "{provider}/.well-known/openid-configuration"
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The OpenID Connect provider on a free loopback port; its base URL."""
    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, provider_app(user_claims=[ALICE, MALLORY]), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(30)
        server.server_close()


@pytest.fixture(scope="module")
def server(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app, fresh (its first request is a test's), allowing alice but not mallory."""
    workdir = tmp_path_factory.mktemp("login-app")
    secrets = workdir / "secrets.toml"
    secrets.write_text(SECRETS.replace("{provider}", provider))
    with serve_app(
        workdir,
        args=["--secrets.files", str(secrets)],
        env={"PROMPT_LAB_ALLOWED_USERS": "alice@example.org"},
    ) as srv:
        yield srv


@pytest.fixture
def page(browser, server: AppServer):
    """A fresh browser context per test: no cookies, so no one is signed in."""
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def sign_in(page, server: AppServer, user: User) -> None:
    """From the app's sign-in page through the provider's form, typing the user's subject."""
    page.get_by_role("button", name="Sign in").click()
    subject = page.locator('input[name="sub"]')
    subject.wait_for(state="visible", timeout=PAGE_TIMEOUT_S * 1000)
    subject.fill(user.sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{server.url}/**", timeout=PAGE_TIMEOUT_S * 1000)


def shows_sign_in_only(page) -> None:
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("button", name="Sign in").wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    wait_idle(page)
    assert main.get_by_role("heading", name="Prompt Lab").is_visible()
    assert main.get_by_text("sign in to use it").is_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.locator('[data-testid="stTextArea"], [data-testid="stDataFrame"]').count() == 0


# First in the file: on a fresh server a direct link is run in Streamlit's legacy mode, without
# app.py, so this also checks the gate in ui/navigation.through_app.
def test_a_page_opened_by_direct_link_while_signed_out_shows_only_the_sign_in(page, server):
    with explained(server, page, "login-direct-link"):
        open_page(page, server, "/compare")
        shows_sign_in_only(page)
        assert page.get_by_role("heading", name="Compare").count() == 0
        snap(page, "login")


def test_signing_in_shows_the_playground_with_the_users_name_and_signing_out_ends_it(page, server):
    with explained(server, page, "login-sign-in"):
        open_page(page, server, "/")
        shows_sign_in_only(page)
        sign_in(page, server, ALICE)
        main = page.locator('[data-testid="stMain"]')
        heading = main.get_by_role("heading", name="Playground", exact=True)
        heading.wait_for(timeout=MODEL_TIMEOUT_S * 1000)  # it loads the model
        wait_idle(page, timeout_s=MODEL_TIMEOUT_S)
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("Alice Liddell").is_visible()
        assert sidebar.get_by_text("alice@example.org").is_visible()
        snap(page, "signed-in")

    with explained(server, page, "login-sign-out"):
        sidebar.get_by_role("button", name="Sign out").click()
        # The provider asks to end its session too, then sends the browser back to the app.
        page.get_by_role("button", name="End session").click(timeout=PAGE_TIMEOUT_S * 1000)
        page.wait_for_url(f"{server.url}/**", timeout=PAGE_TIMEOUT_S * 1000)
        shows_sign_in_only(page)
        open_page(page, server, "/experiments")  # and stays signed out on another page
        shows_sign_in_only(page)


def test_an_address_off_the_allow_list_is_refused_by_name(page, server):
    with explained(server, page, "login-refused"):
        open_page(page, server, "/")
        sign_in(page, server, MALLORY)
        main = page.locator('[data-testid="stMain"]')
        refusal = main.get_by_text("mallory@example.com may not use this Prompt Lab")
        refusal.wait_for(timeout=PAGE_TIMEOUT_S * 1000)
        wait_idle(page)
        assert main.get_by_role("button", name="Sign out").is_visible()
        assert page.get_by_role("heading", name="Playground").count() == 0
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        snap(page, "refused")
