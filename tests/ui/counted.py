"""Watching what a page run does, around the real functions (how often one is called, the files
of the downloads written only when clicked), and storing a result between two runs."""

from collections.abc import Callable

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from storage import queries
from storage.db import session_scope
from storage.schema import ResultRecord


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


def add_result(db_url: str, experiment_id: int, *, position: int, score: float, output: str):
    """One more result, as a running experiment stores it (replacing the one there, if any)."""
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        example_key = record.example_keys[position]
        session.query(ResultRecord).filter_by(
            experiment_id=experiment_id, example_key=example_key
        ).delete()
        queries.add_results(
            session=session,
            experiment_id=experiment_id,
            results=[
                dict(
                    example_key=example_key,
                    position=position,
                    prompt="a prompt",
                    output=output,
                    reference="a reference",
                    **dict.fromkeys(("rouge1", "rouge2", "rougeL", "rougeLsum"), score),
                    finish_reason="eos",
                )
            ],
        )
