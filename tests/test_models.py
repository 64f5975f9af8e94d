"""Model loading: kinds, devices, dtypes, the one-model registry and errors a user can cause."""

import gc
import json
import weakref

import pytest
import torch

from core.errors import PromptLabError
from core.models import registry as models
from core.models.registry import ModelRequest, get_model, load_model, resolve_device, resolve_dtype

# every local path that may not be opened is refused with the same sentence
REFUSED = "is not a model folder or GGUF file that Prompt Lab may open"


def test_causal_folder_loads_with_left_padding_and_its_context_window(tiny_causal_dir):
    loaded = load_model(ModelRequest(str(tiny_causal_dir), device="cpu"))
    assert loaded.kind == "causal"
    assert loaded.tokenizer.padding_side == "left"
    assert (loaded.device, loaded.dtype, loaded.context_window) == ("cpu", "float32", 256)
    assert loaded.has_chat_template and loaded.eos_token_ids == [loaded.tokenizer.eos_token_id]


def test_encoder_decoder_folder_is_detected_from_its_config(tiny_t5_dir):
    loaded = load_model(ModelRequest(str(tiny_t5_dir)))
    assert loaded.kind == "seq2seq" and loaded.context_window == 128
    assert type(loaded.model).__name__ == "T5ForConditionalGeneration"
    assert not loaded.has_chat_template


def test_dtype_can_be_overridden(tiny_causal_dir):
    loaded = load_model(ModelRequest(str(tiny_causal_dir), dtype="bf16"))
    assert loaded.dtype == "bfloat16"
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_encoder_only_model_is_not_a_text_generator(bert_dir):
    with pytest.raises(PromptLabError, match="bert model, which does not generate text"):
        load_model(ModelRequest(str(bert_dir)))


def test_folder_without_a_model_says_so(tmp_path):
    with pytest.raises(PromptLabError, match=REFUSED):
        load_model(ModelRequest(str(tmp_path)))


def test_path_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(PromptLabError, match=REFUSED):
        load_model(ModelRequest(str(tmp_path / "missing")))


def test_unknown_hub_id_without_network_fails_fast_with_a_message():
    with pytest.raises(PromptLabError, match="Hub cannot be reached"):
        load_model(ModelRequest("no-such-owner/no-such-model"))


def test_model_needing_its_own_code_explains_trust_remote_code(tmp_path):
    config = {
        "model_type": "custom-thing",
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PromptLabError, match="trust_remote_code.*off by default"):
        load_model(ModelRequest(str(tmp_path)))


def automatic_choice() -> tuple[str, str]:
    """What the README promises: CUDA (bf16 where supported, else fp16), then Apple MPS
    (fp16), then the CPU (fp32), read from this machine."""
    if torch.cuda.is_available():
        return "cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if torch.backends.mps.is_available():
        return "mps", "float16"
    return "cpu", "float32"


def test_the_automatic_choice_is_the_best_device_here_with_its_usual_dtype(tiny_causal_dir):
    device, dtype = automatic_choice()
    assert resolve_device(None) == resolve_device("auto") == device
    assert resolve_dtype(None, device) == dtype
    loaded = load_model(ModelRequest(str(tiny_causal_dir)))
    assert (loaded.device, loaded.dtype) == (device, dtype)
    assert next(loaded.model.parameters()).device.type == device


def test_device_and_dtype_choices():
    assert resolve_dtype(None, "cpu") == "float32"
    assert resolve_dtype("fp16", "cpu") == "float16"
    with pytest.raises(PromptLabError, match="Unknown dtype 'int3'"):
        resolve_dtype("int3", "cpu")
    with pytest.raises(PromptLabError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


def test_asking_for_cuda_without_a_gpu_is_a_message(monkeypatch):
    # Made to see no GPU (the one thing mocked), so that this runs on machines that have one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PromptLabError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_registry_reuses_the_loaded_model_and_frees_it_on_switch(tiny_causal_dir, tiny_t5_dir):
    try:
        first = get_model(ModelRequest(str(tiny_causal_dir)))
        # Asking for the device that "auto" chose here is the same request: no second load.
        here = ModelRequest(str(tiny_causal_dir), device=automatic_choice()[0])
        assert get_model(here) is first
        old = weakref.ref(first.model)
        del first
        second = get_model(ModelRequest(str(tiny_t5_dir)))
        gc.collect()
        assert old() is None, "the previous model is still in memory"
        assert models.current_model() is second
    finally:
        models.unload()
    assert models.current_model() is None


def test_mistyped_folder_keeps_the_loaded_model(tiny_causal_dir, tmp_path):
    try:
        loaded = get_model(ModelRequest(str(tiny_causal_dir)))
        with pytest.raises(PromptLabError, match=REFUSED):
            get_model(ModelRequest(str(tmp_path)))
        assert models.current_model() is loaded
    finally:
        models.unload()


def test_model_that_fails_to_load_leaves_none_half_loaded(tiny_causal_dir, bert_dir):
    try:
        get_model(ModelRequest(str(tiny_causal_dir)))
        with pytest.raises(PromptLabError, match="does not generate text"):
            get_model(ModelRequest(str(bert_dir)))
        assert models.current_model() is None
    finally:
        models.unload()


def test_a_held_model_is_not_swapped_or_unloaded_under_a_running_generation(
    tiny_causal_dir, tiny_t5_dir
):
    first = ModelRequest(str(tiny_causal_dir))
    with models.hold(first) as loaded:
        with pytest.raises(PromptLabError, match="is generating"):
            models.get_model(ModelRequest(str(tiny_t5_dir)))
        with pytest.raises(PromptLabError, match="is generating"):
            models.unload()
        assert models.get_model(first) is loaded and loaded.model is not None
    assert models.get_model(ModelRequest(str(tiny_t5_dir))).kind == "seq2seq"
    models.unload()
    assert models.current_model() is None


def test_an_unexpected_load_failure_is_a_sentence_without_the_error_text(tmp_path, caplog):
    from tests.conftest import CHAT_TEMPLATE, build_tokenizer

    folder = tmp_path / "broken"
    folder.mkdir()
    tokenizer = build_tokenizer(CHAT_TEMPLATE)
    tokenizer.save_pretrained(folder)
    json.dump(
        {"model_type": "llama", "vocab_size": len(tokenizer)}, open(folder / "config.json", "w")
    )
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(PromptLabError) as raised:
        load_model(ModelRequest(str(folder), device="cpu"))
    message = str(raised.value)
    assert message == (
        f"Could not load '{folder}': its files could not be read as a model "
        "(SafetensorError); the details are in the app's log."
    )
    # The library's own words (which may name other files) go to the log, with the traceback.
    assert "deserializing header" not in message
    assert any("deserializing header" in (r.exc_text or "") for r in caplog.records)
