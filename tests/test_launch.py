"""Where the app listens: loopback by default, and never beyond it without sign-in
(core/cli/launch.py).
The real launcher is started as `make run` starts it, and the sockets it holds are read from the
kernel's own table."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core import policy
from core.cli import launch
from core.errors import PromptLabError

ROOT = Path(__file__).resolve().parent.parent
AUTH = """
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "a-long-random-string-for-the-cookie"
client_id = "prompt-lab"
client_secret = "s3cret"
server_metadata_url = "https://id.example.org/.well-known/openid-configuration"
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert launch.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "10.0.0.1", "lab.example"])
def test_other_hosts_are_exposed(host: str) -> None:
    assert not launch.is_loopback(host)


def _secrets(tmp_path: Path, text: str) -> list[Path]:
    path = tmp_path / "secrets.toml"
    path.write_text(text, encoding="utf-8")
    return [tmp_path / "missing.toml", path]


def test_login_configured_needs_a_whole_provider(tmp_path: Path) -> None:
    assert launch.login_configured(_secrets(tmp_path, AUTH))
    assert not launch.login_configured(_secrets(tmp_path, AUTH.replace("cookie_secret", "x")))
    assert not launch.login_configured(_secrets(tmp_path, AUTH.replace("client_secret", "y")))
    assert not launch.login_configured(_secrets(tmp_path, "[other]\na = 1\n"))
    assert not launch.login_configured([tmp_path / "none.toml"])


def test_login_configured_with_a_named_provider(tmp_path: Path) -> None:
    text = AUTH.replace("client_id", "[auth.keycloak]\nclient_id")
    assert launch.login_configured(_secrets(tmp_path, text))


def test_unreadable_secrets_are_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(PromptLabError, match="could not be read as TOML"):
        launch.login_configured(_secrets(tmp_path, "[auth\nredirect_uri = "))


def test_exposed_without_login_is_refused_naming_the_ways_out(tmp_path: Path) -> None:
    with pytest.raises(PromptLabError) as refused:
        launch.check_exposure("0.0.0.0", files=[], allowed=policy.Policy())
    message = str(refused.value)
    assert "without sign-in" in message and "[auth]" in message
    assert policy.INSECURE_NO_LOGIN in message and "127.0.0.1" in message


def test_exposed_with_login_or_accepted_risk_starts(tmp_path: Path) -> None:
    files = _secrets(tmp_path, AUTH)
    assert launch.check_exposure("0.0.0.0", files=files, allowed=policy.Policy()) is None
    warning = launch.check_exposure(
        "0.0.0.0", files=[], allowed=policy.Policy(insecure_no_login=True)
    )
    assert warning and warning.startswith("WARNING") and "no sign-in" in warning


def test_streamlit_caps_uploads_at_the_operators_limit() -> None:
    command = launch.streamlit_command("127.0.0.1", 8501, policy.Policy(max_upload_mb=2.5))
    assert command[command.index("--server.maxUploadSize") + 1] == "3"
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert "--server.maxUploadSize" not in launch.streamlit_command(
        "127.0.0.1", 8501, policy.Policy(max_upload_mb=0)
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPT_LAB_")}
    home = tmp_path / "home"  # no ~/.streamlit/secrets.toml of the machine's user
    home.mkdir(exist_ok=True)
    return env | {"HOME": str(home), "PROMPT_LAB_DB": f"sqlite:///{tmp_path / 'lab.db'}"} | extra


def _listening(port: int) -> list[str]:
    """The local addresses listening on `port`, from /proc/net/tcp and tcp6 (state 0A)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_launcher_refuses_the_network_without_login_before_listening(
    tmp_path: Path, how: str
) -> None:
    port = _free_port()
    args = ["--host", "0.0.0.0"] if how == "flag" else []
    extra = {} if how == "flag" else {launch.HOST_VARIABLE: "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli.launch", "--port", str(port), *args],
        cwd=ROOT,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: Prompt Lab will not listen on 0.0.0.0 without sign-in")
    assert "Traceback" not in done.stderr and "You can now view" not in done.stdout
    assert _listening(port) == []


def test_launcher_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    port = _free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "core.cli.launch", "--port", str(port)],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a hang guard: it starts in seconds
        while True:
            assert app.poll() is None, "the app exited instead of starting"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the app did not answer in 120 s"
            time.sleep(0.2)
        assert _listening(port) == ["127.0.0.1"]
    finally:
        app.terminate()
        app.wait(timeout=60)
