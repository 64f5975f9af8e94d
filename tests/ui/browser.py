"""Real-browser test helpers: the app served by `streamlit run`, driven by Debian's Chromium.

Nothing here downloads a browser: Playwright (the Python package) drives the system Chromium at
/usr/bin/chromium (`apt-get install chromium`; `.ci/run` installs it). Never run
`playwright install`. A missing browser is a test failure with instructions, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PROMPT_LAB_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, and a closed network
# refuses its connections; the others keep a headless run quiet and deterministic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
# The first page load converts or loads the embedded model on CPU (5-40 s, slower on a busy box).
MODEL_TIMEOUT_S = 180.0
PAGE_TIMEOUT_S = 60.0
INSTALL_HINT = (
    "Install Debian's Chromium: `sudo apt-get install -y chromium` (or run .ci/run, which "
    "installs it), or point PROMPT_LAB_CHROMIUM at a Chromium binary. Playwright's own browser "
    "download (`playwright install`) is not used."
)


def screenshots_dir() -> Path:
    """Where screenshots go: $PROMPT_LAB_SCREENSHOTS (relative to the repository), else
    artifacts/screenshots (git-ignored)."""
    path = ROOT / (os.environ.get("PROMPT_LAB_SCREENSHOTS") or "artifacts/screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """`streamlit run app.py` on a free loopback port, with its own database; output to a log.
    `args` go on its command line after the project's, `env` into its environment."""

    def __init__(
        self, workdir: Path, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.args, self.env = list(args), dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "streamlit.log"
        self.db_url = f"sqlite:///{workdir / 'lab.sqlite'}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            PROMPT_LAB_DB=self.db_url,
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        # The venv's own interpreter; sys.executable is it when pytest runs from .venv.
        python = ROOT / ".venv" / "bin" / "python"
        cmd = [
            str(python if python.exists() else sys.executable),
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
            *self.args,
        ]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.wait_healthy()

    def wait_healthy(self, timeout_s: float = PAGE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"streamlit exited with code {self.proc.returncode}{self.tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"streamlit not healthy after {timeout_s:.0f} s{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        """The end of the server's output, to append to a failure message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "\n(no streamlit log)"
        last = "\n".join(text.splitlines()[-lines:])
        return f"\n--- streamlit output (last {lines} lines, {self.log_path}) ---\n{last}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()


@contextmanager
def serve_app(workdir: Path, **options) -> Iterator[AppServer]:
    server = AppServer(workdir, **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def open_browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; fails (never skips) with install steps if absent."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "The Python package playwright is missing: `make setup` (pip install -r "
            "requirements.txt). Do not run `playwright install`.",
            pytrace=False,
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        pytest.fail(
            f"No Chromium at {CHROMIUM} (chromium on PATH: {found}). {INSTALL_HINT}",
            pytrace=False,
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def explained(server: AppServer, page: Page, step: str) -> Iterator[None]:
    """Turn any failure inside a step into an AssertionError naming the step, with a screenshot
    of the page as it was and the server's output."""
    try:
        yield
    except Exception as exc:
        shot = screenshots_dir() / f"FAILED-{step}.png"
        try:
            page.screenshot(path=shot, full_page=True)
            where = f"\nscreenshot: {shot}"
        except Exception as shot_exc:  # the page itself may be gone
            where = f"\n(no screenshot: {shot_exc})"
        raise AssertionError(
            f"step '{step}' failed at {page.url}: {type(exc).__name__}: {exc}{where}{server.tail()}"
        ) from exc


_IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-testid="stSkeleton"]')
        && !!document.querySelector('[data-testid="stMain"] h1');
}"""


def wait_idle(page: Page, timeout_s: float = PAGE_TIMEOUT_S, settle_s: float = 0.75) -> None:
    """Wait until the script run is over and the page is drawn: state `notRunning`, no skeleton,
    a page title, all holding for `settle_s` (a rerun can start just after a check)."""
    deadline = time.monotonic() + timeout_s
    idle_since: float | None = None
    while True:
        now = time.monotonic()
        if page.evaluate(_IDLE_JS):
            idle_since = idle_since or now
            if now - idle_since >= settle_s:
                return
        else:
            idle_since = None
        if now > deadline:
            state = page.evaluate(
                "() => document.querySelector('[data-testid=\"stApp\"]')"
                "?.getAttribute('data-test-script-state')"
            )
            raise TimeoutError(f"page not idle after {timeout_s:.0f} s (script state {state})")
        page.wait_for_timeout(150)


def open_page(page: Page, server: AppServer, path: str = "/", **wait: float) -> None:
    page.goto(f"{server.url}{path}")
    wait_idle(page, **wait)


def click_nav(page: Page, title: str, **wait: float) -> None:
    """Go to a page the way a user does: its link in the sidebar navigation."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    # The new page's own title, not a pause, tells the old page from the new one.
    heading = page.locator('[data-testid="stMain"]').get_by_role("heading", name=title, exact=True)
    heading.first.wait_for(state="visible", timeout=wait.get("timeout_s", PAGE_TIMEOUT_S) * 1000)
    wait_idle(page, **wait)


def snap(page: Page, name: str) -> Path:
    """A full-page PNG. Streamlit scrolls inside its main block, not the document, so the
    viewport is stretched to the content's height for the shot, then put back."""
    path = screenshots_dir() / f"{name}.png"
    height = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll(
              '[data-testid="stMain"], [data-testid="stAppScrollToBottomContainer"], '
              + '[data-testid="stSidebarContent"]')].map(e => e.scrollHeight),
            document.documentElement.scrollHeight)"""
    )
    tall = min(max(int(height), VIEWPORT["height"]), 8000)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": tall})
    try:
        page.wait_for_timeout(300)  # relayout
        page.screenshot(path=path, full_page=True, animations="disabled")
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, page: Page) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")
        page.wait_for_timeout(250)
