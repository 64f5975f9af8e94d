"""Shared fixtures: tiny real models built from configs, the embedded SmolLM2, and a store of
each test's own (SQLite, and PostgreSQL too in modules marked both_databases)."""

from __future__ import annotations

import os

# Nothing in the tests may reach a hub; set before transformers reads its settings.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from tests import postgres  # noqa: E402

DATABASES = ("sqlite", "postgresql")  # the `db` params of tests marked both_databases
GPU_DESELECTED = pytest.StashKey[int]()  # how many gpu tests this run left out

WORDS = (
    "the a person one two asks tells about summary dialogue what was going on ? . , : "
    "hello hi thanks bye yes no book train ticket doctor time today tomorrow shop buy sell "
    "#Person1#: #Person2#: summarize following conversation and is are to for in of with"
).split()
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def build_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a small vocabulary, with offsets like any fast tokenizer."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="session", autouse=True)
def model_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests act as the operator: models saved in pytest's temp folders may be opened, beside
    the default roots. Set in os.environ, so that the CLI and app started as processes see it."""
    from core import policy

    variable = policy.VARIABLES["model_roots"]
    before = os.environ.get(variable)
    roots = [tmp_path_factory.getbasetemp(), *policy.Policy().model_roots]
    os.environ[variable] = os.pathsep.join(str(root) for root in roots)
    yield
    if before is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = before


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and a chat template, saved as a model folder."""
    path = tmp_path_factory.mktemp("tiny-causal")
    tokenizer = build_tokenizer(CHAT_TEMPLATE)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer T5 (encoder-decoder) with random weights, saved as a model folder."""
    path = tmp_path_factory.mktemp("tiny-t5")
    tokenizer = build_tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_heads=4,
        n_positions=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_factor=3.0,  # varied, input-dependent outputs rather than one token repeated
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # random weights favour <pad> for ever; let words win instead
        model.lm_head.weight[: len(SPECIALS)] = 0.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-bert")
    BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def embedded():
    """The real embedded SmolLM2, loaded once per test session (from the converted cache)."""
    from core.models.registry import ModelRequest, load_model

    return load_model(ModelRequest(device="cpu"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked both_databases that use `db` run once per database, named in the test id."""
    if "db" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize("db", DATABASES, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked gpu need CUDA: without it they are deselected, and the summary says so,
    unless `-m` names gpu (`make test-gpu`), when they run and fail saying what they need."""
    if torch.cuda.is_available() or "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]
        config.hook.pytest_deselected(items=gpu)
        config.stash[GPU_DESELECTED] = len(gpu)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if config.stash.get(GPU_DESELECTED, 0):
        terminalreporter.write_line(
            f"{config.stash[GPU_DESELECTED]} gpu test(s) deselected: no CUDA GPU here "
            "(`make test-gpu` runs them on a machine with one)."
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer]:
    """A PostgreSQL server of the test session's own, on 127.0.0.1 and a free port."""
    problem = postgres.missing()
    if problem:
        pytest.fail(problem, pytrace=False)  # never a skip: PostgreSQL would go untested
    with postgres.running_server() as server:
        yield server


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a store of the test's own, migrated on first use: a real SQLite file, or (the
    [postgresql] param of a both_databases test) an empty database on the test server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite"
        return
    server: postgres.PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url
