"""Starting the web app, `python -m core.cli.launch`: where it listens (loopback unless told),
and the refusal to listen on the network without sign-in, decided before anything listens."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from core import policy
from core.errors import PromptLabError

LOOPBACK = "127.0.0.1"
HOST_VARIABLE = "PROMPT_LAB_HOST"  # for deployments; `make run HOST=…` sets it too
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach an app listening on `host`."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def secrets_files(project: Path) -> list[Path]:
    """Where Streamlit reads secrets.toml from by default, in its order."""
    return [Path.home() / ".streamlit" / "secrets.toml", project / ".streamlit" / "secrets.toml"]


def login_configured(files: Sequence[Path]) -> bool:
    """Whether the secrets name an OpenID Connect provider for `st.login`, as Streamlit needs it:
    redirect_uri and cookie_secret, and a provider's client_id, client_secret and metadata URL."""
    auth: dict = {}
    for path in files:
        try:
            auth |= tomllib.loads(path.read_text(encoding="utf-8")).get("auth", {})
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PromptLabError(
                f"{path} could not be read as TOML ({type(exc).__name__}): fix it, or the "
                "sign-in it configures cannot work."
            ) from None
    if not isinstance(auth, dict) or not all(
        auth.get(k) for k in ("redirect_uri", "cookie_secret")
    ):
        return False
    providers = [auth, *(v for v in auth.values() if isinstance(v, dict))]
    return any(all(p.get(k) for k in PROVIDER_KEYS) for p in providers)


def check_exposure(host: str, *, files: Sequence[Path], allowed: policy.Policy) -> str | None:
    """None when the app may listen on `host`; else the warning to print when the operator
    accepted the risk. Raises when it must not start at all."""
    if is_loopback(host) or login_configured(files):
        return None
    if allowed.insecure_no_login:
        return (
            f"WARNING: Prompt Lab listens on {host} with no sign-in "
            f"({policy.INSECURE_NO_LOGIN}=1): anyone who can reach this machine can use it, "
            "load models and read every experiment."
        )
    raise PromptLabError(
        f"Prompt Lab will not listen on {host} without sign-in: anyone who can reach this machine "
        "could use it. Configure login with an [auth] section in .streamlit/secrets.toml (see the "
        'README, "Sharing Prompt Lab with a team"), or listen on 127.0.0.1 (the default). '
        f"On a network you trust completely, {policy.INSECURE_NO_LOGIN}=1 accepts the risk."
    )


def streamlit_command(host: str, port: int, allowed: policy.Policy) -> list[str]:
    command = [
        *(sys.executable, "-m", "streamlit", "run", str(policy.PROJECT / "app.py")),
        *("--server.address", host, "--server.port", str(port)),
    ]
    if allowed.max_upload_mb:  # 0 is no limit of the app's own: Streamlit's default stays
        # Streamlit's cap, in whole MB, so a larger file is refused before it is held in memory
        command += ["--server.maxUploadSize", str(max(1, math.ceil(allowed.max_upload_mb)))]
    return command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.cli.launch", description=__doc__)
    parser.add_argument("--host", default=os.environ.get(HOST_VARIABLE) or LOOPBACK)
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    try:
        allowed = policy.current()
        warning = check_exposure(args.host, files=secrets_files(policy.PROJECT), allowed=allowed)
    except PromptLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if warning:
        print(warning, file=sys.stderr)
    command = streamlit_command(args.host, args.port, allowed)
    os.chdir(policy.PROJECT)
    os.execv(command[0], command)  # Streamlit takes this process's place: Ctrl-C reaches it


if __name__ == "__main__":
    sys.exit(main())
