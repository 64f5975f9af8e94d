"""What only the operator decides, read from the environment each time it is asked: never from
the browser, a stored spec or the store. The README's "Sharing Prompt Lab with a team" lists them.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import PromptLabError

PROJECT = Path(__file__).resolve().parent.parent
KEY_PREFIX = "PROMPT_LAB_KEY_"  # API key variables must start with it, or be listed
# Named loudly on purpose: it exposes the app to the network with no sign-in at all.
INSECURE_NO_LOGIN = "PROMPT_LAB_INSECURE_NO_LOGIN"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def _default_roots() -> tuple[Path, ...]:
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    hub = Path(os.environ.get("HF_HUB_CACHE") or hf_home / "hub")
    return (hub, PROJECT / "models")


@dataclass(frozen=True)
class Policy:
    """The operator's settings; each field's variable is in `VARIABLES`."""

    allow_remote_code: bool = False  # a repository's own Python runs with the app's rights
    model_roots: tuple[Path, ...] = field(default_factory=_default_roots)
    hub_downloads: bool = True  # models by Hub id may be downloaded into the cache
    key_variables: tuple[str, ...] = ()  # key variables allowed beside KEY_PREFIX*
    endpoint_hosts: tuple[str, ...] = ()  # hosts a served endpoint may name; () is any
    max_upload_mb: float = 50.0  # the largest dataset file accepted
    max_examples_per_run: int = 0  # 0: no limit
    max_runs_per_user: int = 0  # runs going at once for one user; 0: no limit
    allowed_users: tuple[str, ...] = ()  # e-mail addresses or @domains; () is anyone signed in
    admins: tuple[str, ...] = ()  # e-mail addresses that may delete what others created
    insecure_no_login: bool = False  # listen beyond loopback without sign-in
    metrics_dir: Path | None = None  # operator metric files, run with the app's rights; None: none


VARIABLES = {
    "allow_remote_code": "PROMPT_LAB_ALLOW_REMOTE_CODE",
    "model_roots": "PROMPT_LAB_MODEL_ROOTS",
    "hub_downloads": "PROMPT_LAB_HUB_DOWNLOADS",
    "key_variables": "PROMPT_LAB_KEY_VARIABLES",
    "endpoint_hosts": "PROMPT_LAB_ENDPOINT_HOSTS",
    "max_upload_mb": "PROMPT_LAB_MAX_UPLOAD_MB",
    "max_examples_per_run": "PROMPT_LAB_MAX_EXAMPLES_PER_RUN",
    "max_runs_per_user": "PROMPT_LAB_MAX_RUNS_PER_USER",
    "allowed_users": "PROMPT_LAB_ALLOWED_USERS",
    "admins": "PROMPT_LAB_ADMINS",
    "insecure_no_login": INSECURE_NO_LOGIN,
    "metrics_dir": "PROMPT_LAB_METRICS_DIR",
}


def current() -> Policy:
    """The policy as the environment says now; a malformed value is an error naming its variable."""
    env = os.environ
    values: dict = {}
    for name, var in VARIABLES.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if name in ("allow_remote_code", "hub_downloads", "insecure_no_login"):
            values[name] = _flag(var, raw)
        elif name == "model_roots":
            values[name] = tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p)
        elif name == "metrics_dir":
            values[name] = Path(raw).expanduser()
        elif name in ("max_upload_mb",):
            values[name] = _number(var, raw, float)
        elif name in ("max_examples_per_run", "max_runs_per_user"):
            values[name] = _number(var, raw, int)
        elif name in ("allowed_users", "admins", "endpoint_hosts"):
            values[name] = tuple(v.strip().lower() for v in raw.split(",") if v.strip())
        else:
            values[name] = tuple(v.strip() for v in raw.split(",") if v.strip())
    return Policy(**values)


def _flag(var: str, raw: str) -> bool:
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise PromptLabError(f"{var} must be 1 or 0 (true or false); got '{raw}'.")


def _number(var: str, raw: str, kind: type) -> float | int:
    try:
        value = kind(raw)
    except ValueError:
        raise PromptLabError(f"{var} must be a number; got '{raw}'.") from None
    if value < 0:
        raise PromptLabError(f"{var} cannot be negative; got '{raw}'.")
    return value


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where Prompt Lab caches converted models and embeddings: the argument, $PROMPT_LAB_CACHE,
    or ~/.cache/prompt-lab."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("PROMPT_LAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "prompt-lab"


def local_user() -> str:
    """Who uses the app when no sign-in is configured: the account that runs it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def user_allowed(policy: Policy, email: str | None) -> bool:
    """Whether a signed-in address may use the app under the allow-list."""
    if not policy.allowed_users:
        return True
    address = (email or "").strip().lower()
    if not address or "@" not in address:
        return False
    domain = "@" + address.rsplit("@", 1)[1]
    return address in policy.allowed_users or domain in policy.allowed_users


def is_admin(policy: Policy, user: str | None) -> bool:
    return bool(user) and user.strip().lower() in policy.admins


@dataclass(frozen=True)
class Actor:
    """Who is doing something: recorded on what they create, checked on what they delete."""

    name: str  # the signed-in e-mail address, or the local account's name
    signed_in: bool = False  # False: one local user, who owns everything, as before sign-in existed
    admin: bool = False

    def may_change(self, owner: str | None) -> bool:
        """Whether this actor may delete something `owner` created (None: made before owners)."""
        return not self.signed_in or self.admin or (owner is not None and owner == self.name)


def local_actor() -> Actor:
    return Actor(local_user())


def signed_in_actor(email: str, policy: Policy | None = None) -> Actor:
    address = email.strip().lower()
    return Actor(address, signed_in=True, admin=is_admin(policy or current(), address))
