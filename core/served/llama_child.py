"""The process llama.cpp (local) runs in: llama.cpp's server from xllamacpp on a loopback port,
serving one GGUF file, until its parent closes stdin or dies.

    python -m core.served.llama_child '{"gguf": …, "alias": …, "slots": …, "ctx_per_slot": …,
                                        "threads": …, "key_env": …}'
"""

from __future__ import annotations

import json
import os
import sys


def serve(
    gguf: str, alias: str, slots: int, ctx_per_slot: int, threads: int, key_env: str, port: int = 0
) -> None:
    """Serve until stdin closes; the first line written is {"base_url": …}. Port 0: a free
    one, chosen when it binds."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.model_alias = {alias}  # a set of names: a plain string would be split into letters
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_parallel = slots
    params.cont_batching = True
    params.n_ctx = ctx_per_slot * slots  # shared by the slots: each gets ctx_per_slot
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    key = os.environ.get(key_env)
    if key:
        params.api_keys = [key]
    server = xllamacpp.Server(params)
    print(json.dumps({"base_url": f"{server.listening_address}/v1"}), flush=True)
    sys.stdin.read()  # until the parent closes the pipe or dies
    os._exit(0)  # xllamacpp's threads are not daemons: leave without waiting for them


if __name__ == "__main__":
    serve(**json.loads(sys.argv[1]))
