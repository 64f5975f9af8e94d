"""Who is using the app: Streamlit's own sign-in (st.login, st.user) when `.streamlit/secrets.toml`
has an [auth] section, else the one local user, for whom nothing changes; and the gate that
shows only a sign-in, or a refusal, to anyone who may not use the app."""

import streamlit as st

from core import policy
from core.cli import launch
from core.errors import PromptLabError
from core.policy import Actor, local_actor, signed_in_actor
from ui.feedback import plain


def auth_configured() -> bool:
    """Whether the operator set up sign-in: an [auth] section in the secrets."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # a malformed secrets file: Streamlit reports it at start and on st.login
        return False


def email() -> str | None:
    """The signed-in user's address (None when no one is signed in)."""
    if not st.user.get("is_logged_in"):
        return None
    address = st.user.get("email")
    return address.strip().lower() if isinstance(address, str) and address.strip() else None


def actor() -> Actor:
    """Who acts in this session: the signed-in address, or the local user without sign-in.
    Pages run only past the gate, so with sign-in set up someone is signed in."""
    if not auth_configured():
        return local_actor()
    address = email()
    if address is None:  # the gate stops such a run first; never act as someone else
        st.stop()
    return signed_in_actor(address)


def gate() -> bool:
    """Whether this run may show the app. Without sign-in set up, always. Otherwise a signed-
    out visitor sees only a sign-in, and an address off the allow-list only a refusal; a
    signed-in user gets their name and a Sign out button in the sidebar. Listening beyond
    loopback without sign-in (started around `make run`), it shows only how to fix that."""
    if not auth_configured():
        return _loopback_or_accepted()
    address = email()
    if address is None and not st.user.get("is_logged_in"):
        _sign_in()
        return False
    if address is None:
        _refuse(
            "Your sign-in did not say your e-mail address, and Prompt Lab records who did "
            "what by it. Ask the person who runs it to have the provider send it (scope email)."
        )
        return False
    try:
        settings = policy.current()
    except PromptLabError as exc:  # a malformed variable: closed, with what to fix
        _refuse(str(exc))
        return False
    if not policy.user_allowed(settings, address):
        _refuse(
            f"{address} may not use this Prompt Lab: it is not on the list of allowed users. "
            "Ask the person who runs it to add you, or sign in with another address."
        )
        return False
    with st.sidebar:
        name = st.user.get("name")
        st.markdown(f"**{plain(name)}**" if isinstance(name, str) and name else "Signed in")
        st.caption(plain(address))
        st.button("Sign out", on_click=st.logout, key="identity.sign-out")
    return True


def _loopback_or_accepted() -> bool:
    address = st.get_option("server.address") or ""  # none: every interface
    if launch.is_loopback(address):
        return True
    try:
        if policy.current().insecure_no_login:
            return True
    except PromptLabError as exc:
        _refuse(str(exc), signed_in=False)
        return False
    _refuse(
        f"Prompt Lab is listening on {address or 'every interface'} with no sign-in, so it shows "
        "nothing: anyone who can reach this machine could use it. Start it with `make run` "
        '(127.0.0.1), or configure sign-in (README: "Sharing Prompt Lab with a team").',
        signed_in=False,
    )
    return False


def _refuse(sentence: str, *, signed_in: bool = True) -> None:
    st.title("Prompt Lab")
    st.error(plain(sentence))
    if signed_in:
        st.button("Sign out", on_click=st.logout, key="identity.sign-out")


def _sign_in() -> None:
    st.title("Prompt Lab")
    st.write("This Prompt Lab is shared: sign in to use it.")
    st.button("Sign in", type="primary", on_click=st.login, key="identity.sign-in")
