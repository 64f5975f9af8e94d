"""scripts/system-packages.sh, which `make test` runs first: it installs only the Debian
packages that are missing, updating the package lists first, as root or through sudo, and
otherwise stops with the command to run. It runs in dry-run mode (printing its commands) on a
folder standing in for /, so nothing is installed; a non-root user is `nobody` via setpriv."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "system-packages.sh"
ALL = ["chromium", "fonts-noto-color-emoji", "postgresql"]


def fake_root(folder: Path, *present: str) -> Path:
    """A folder laid out like / with the files by which the script knows each package."""
    files = {
        "chromium": "usr/bin/chromium",
        "fonts-noto-color-emoji": "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
        "postgresql": "usr/lib/postgresql/17/bin/initdb",
    }
    for name in present:
        path = folder / files[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return folder


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    """A PATH that another user can read, holding `id` and nothing else (no sudo)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        path.chmod(0o755)
        (path / "id").symlink_to(shutil.which("id"))
        yield path


def run(root: Path, path: Path | None = None, *, other_user: bool = False):
    env = {"SYSTEM_PACKAGES_ROOT": str(root), "SYSTEM_PACKAGES_DRY_RUN": "1"}
    env["PATH"] = str(path) if path else os.environ["PATH"]
    command = ["/bin/bash", str(SCRIPT)]
    if other_user and os.geteuid() == 0:  # already another user than root otherwise
        command = [
            shutil.which("setpriv"),
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            *command,
        ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_nothing_is_installed_when_every_package_is_there(tmp_path):
    done = run(fake_root(tmp_path, *ALL))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_only_the_missing_packages_are_installed_after_the_lists_are_updated(tmp_path, bin_dir):
    (bin_dir / "sudo").write_text("#!/bin/sh\nexit 1\n")  # only its presence matters: a dry run
    (bin_dir / "sudo").chmod(0o755)
    done = run(fake_root(tmp_path, "chromium"), bin_dir)
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{sudo}env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        f"{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "fonts-noto-color-emoji postgresql",
    ]


def test_a_user_who_is_not_root_goes_through_sudo(bin_dir):
    (bin_dir / "sudo").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sudo").chmod(0o755)
    done = run(Path("/nonexistent"), bin_dir, other_user=True)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["sudo", "sudo"]
    assert done.stdout.splitlines()[1].endswith("apt-get install -y -qq " + " ".join(ALL))


def test_without_root_or_sudo_it_stops_with_the_command_to_run(bin_dir):
    done = run(Path("/nonexistent"), bin_dir, other_user=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == (
        "The tests need chromium fonts-noto-color-emoji postgresql from Debian: as root, run "
        "apt-get update && apt-get install -y chromium fonts-noto-color-emoji postgresql"
    )
