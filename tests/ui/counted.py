"""Watching what a page run does, around the real functions: how often one is called, and the
files of the downloads whose contents are written only when clicked."""

from collections.abc import Callable

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager


def counted(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[None]:
    """A list that grows by one at each call of module.name, which still runs as before."""
    calls: list[None] = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def deferred_downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], bytes]]:
    """File name -> the callable that writes it, for each download a run registered to be
    written on its click (Streamlit's own registry keeps working as before)."""
    registered: dict[str, Callable[[], bytes]] = {}
    real = MediaFileManager.add_deferred

    def recording(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        registered[file_name] = data_callable
        return real(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)
    return registered
