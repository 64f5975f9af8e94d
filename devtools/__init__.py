"""Services that the tests and benches start on loopback: llama.cpp's server and the scripted
OpenAI-compatible server. Neither tests/ nor the app imports from each other through here."""
