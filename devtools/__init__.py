"""Services that the tests and benches start on loopback: llama.cpp's server and the scripted
OpenAI-compatible server."""
