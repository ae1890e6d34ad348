"""Streaming overhead: our parsers and clients against a bare loop reading the same stream.

Run: ``DEBUG=1 .venv/bin/python bench/stream_overhead.py [--tokens 20000] [--runs 5]``

For each provider the fake server (tests/fakes, on loopback, in its own process so it does not
share our GIL) streams the same reply of N tokens as fast as it can. Measured, median of ``--runs``:

- ``bare``: ``requests`` + ``raw.read1`` reading the bytes and splitting lines/events, nothing
  decoded (the floor: what any client pays for the socket and the server);
- ``ours``: ``OllamaClient.chat_stream`` / ``GroqClient.chat_stream`` (terminator checks, JSON
  decoding, usage, cancellable stream);
- ``sdk``: the official ``ollama`` / ``groq`` package, for reference;
- ``parser only``: the decoders fed the recorded body in memory, 64 KiB at a time, no network.

Per-chunk overhead = (ours - bare) / tokens. Results are written to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

import groq  # noqa: E402
import ollama  # noqa: E402
import requests  # noqa: E402

from integrations.groq import GroqClient  # noqa: E402
from integrations.ollama import OllamaClient  # noqa: E402
from integrations.streaming import NdjsonDecoder, SseDecoder  # noqa: E402
from tests.fakes.groq import TEST_KEY, FakeGroq  # noqa: E402
from tests.fakes.ollama import FakeOllama  # noqa: E402

MESSAGES = [{"role": "user", "content": "benchmark"}]


def _serve(kind: str, reply: str, conn) -> None:
    fake = (FakeOllama if kind == "ollama" else FakeGroq)()
    fake.reply = reply
    with fake:
        conn.send(fake.url)
        conn.recv()  # until the parent says stop


@contextlib.contextmanager
def fake_process(kind: str, reply: str):
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(kind, reply, child), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(timeout=5)


def timed(func) -> tuple[float, int]:
    started = time.perf_counter()
    count = func()
    return time.perf_counter() - started, count


def bare(url: str, body: dict, headers: dict, separator: bytes) -> int:
    pieces = 0
    with requests.post(url, json=body, headers=headers, stream=True, timeout=30) as response:
        rest = b""
        while True:
            data = response.raw.read1(65536)
            if not data:
                break
            *parts, rest = (rest + data).split(separator)
            pieces += len(parts)
    return pieces


def record(url: str, body: dict, headers: dict) -> bytes:
    return requests.post(url, json=body, headers=headers, timeout=30).content


def parse_only(decoder_class, data: bytes) -> int:
    decoder = decoder_class()
    count = 0
    for start in range(0, len(data), 65536):
        count += len(decoder.feed(data[start : start + 65536]))
    return count


def run(tokens: int, runs: int) -> list[tuple]:
    reply = " ".join(f"tok{i % 1000}" for i in range(tokens))
    rows = []
    with fake_process("ollama", reply) as base:
        body = {"model": "llama3.2", "messages": MESSAGES, "stream": True}
        url = f"{base}/api/chat"
        client = OllamaClient(base_url=base)
        sdk = ollama.Client(host=base)
        cases = {
            "bare": lambda: bare(url, body, {}, b"\n"),
            "ours": lambda: sum(1 for _ in client.chat_stream(model="llama3.2", messages=MESSAGES)),
            "sdk": lambda: sum(
                1 for _ in sdk.chat(model="llama3.2", messages=MESSAGES, stream=True)
            ),
        }
        recorded = record(url, body, {})
        cases["parser only"] = lambda: parse_only(NdjsonDecoder, recorded)
        rows += measure("ollama (NDJSON)", cases, tokens, runs)
    with fake_process("groq", reply) as base:
        body = {"model": "llama-3.1-8b-instant", "messages": MESSAGES, "stream": True}
        url = f"{base}/openai/v1/chat/completions"
        auth = {"Authorization": f"Bearer {TEST_KEY}"}
        client = GroqClient(api_key=TEST_KEY, base_url=f"{base}/openai/v1")
        sdk = groq.Groq(api_key=TEST_KEY, base_url=base, max_retries=0)
        cases = {
            "bare": lambda: bare(url, body, auth, b"\n\n"),
            "ours": lambda: sum(
                1 for _ in client.chat_stream(model="llama-3.1-8b-instant", messages=MESSAGES)
            ),
            "sdk": lambda: sum(
                1
                for _ in sdk.chat.completions.create(
                    model="llama-3.1-8b-instant", messages=MESSAGES, stream=True
                )
            ),
        }
        recorded = record(url, body, auth)
        cases["parser only"] = lambda: parse_only(SseDecoder, recorded)
        rows += measure("groq (SSE)", cases, tokens, runs)
    return rows


def measure(label: str, cases: dict, tokens: int, runs: int) -> list[tuple]:
    results = {}
    for name, func in cases.items():
        func()  # warm-up: connection, imports
        seconds = statistics.median(timed(func)[0] for _ in range(runs))
        results[name] = seconds
    rows = []
    for name, seconds in results.items():
        overhead = (seconds - results["bare"]) / tokens * 1e6 if name in ("ours", "sdk") else None
        rows.append((label, name, seconds, tokens / seconds, overhead))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = run(args.tokens, args.runs)
    print(f"{args.tokens} tokens per stream, median of {args.runs} runs\n")
    print("| stream | reader | time (ms) | tokens/s | overhead vs bare (µs/chunk) |")
    print("|---|---|---:|---:|---:|")
    for label, name, seconds, rate, overhead in rows:
        extra = f"{overhead:+.1f}" if overhead is not None else ""
        print(f"| {label} | {name} | {seconds * 1000:.1f} | {rate:,.0f} | {extra} |")


if __name__ == "__main__":
    main()
