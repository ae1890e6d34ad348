"""The reading side of concurrent LLM streams alone: CPU per token, and what it does to a loop.

    .venv/bin/python bench/stream_read_cpu.py [--streams 100] [--tokens 200] [--repeat 2]

A fake Ollama (``bench/realtime.py``'s ``TimedOllama``, 5 ms a token) runs in a child process,
so its CPU is not counted. This process reads ``--streams`` streams at once, two ways,
interleaved:

- threads: what a node thread does, one thread per stream, through the real client
  (``OllamaClient.chat_stream``: requests, urllib3, http.client's chunked reads,
  ``ResponseStream``, ``NdjsonDecoder``);
- pumped: what LLM nodes and chat do now, through the same client: each stream's thread hands
  the body to the process's one reading thread (``ChatStream.pump``, ``integrations/reader.py``)
  and waits for its end;
- selector: the floor, every stream on one thread (``selectors``, non-blocking sockets, the
  chunked framing split by hand, the same ``json.loads`` per line);
- aiohttp (when installed: requirements-dev.txt): every stream on one asyncio loop thread
  through a maintained HTTP client with a C parser, reading line by line.

Beside the readers, an asyncio loop thread stands in for Daphne's serving loop: every 2 ms it
writes and reads a byte through a socket pair 20 times (the streams part's relay sends ~10,000
frames a second; each send is a syscall that gives the GIL away). The share of its ticks it
gets done shows how long it waits for the GIL while the readers hand it around among
themselves: CPython lets a thread returning from I/O take a free GIL at once, so a loop that
gives it up on every syscall queues behind a hundred reader threads.

Reports the readers' CPU per token (process CPU minus the loop thread's), voluntary context
switches, and the loop's ticks done against those due (a late tick is not made up) and their
lateness (p50, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACE = 0.005
TICK = 0.002
# Round trips per tick: Daphne's loop relays ~10,000 frames a second in bench/client.py's
# streams part, 20 sends every 2 ms.
SENDS = 20


def fake(tokens: int) -> None:
    from bench.realtime import TimedOllama

    server = TimedOllama(tokens=tokens)
    server.interval = PACE
    print(server.server_address[1], flush=True)
    server.serve_forever()


def body(i: int) -> bytes:
    content = {"model": "m", "messages": [{"role": "user", "content": f"s{i}"}], "stream": True}
    return json.dumps(content).encode()


def read_threads(base: str, streams: int, counts: list[int], go: threading.Event) -> None:
    from integrations.ollama import OllamaClient

    def one(i: int) -> None:
        client = OllamaClient(base_url=base)
        go.wait()
        for item in client.chat_stream(model="m", messages=[{"role": "user", "content": f"s{i}"}]):
            if isinstance(item, str):
                counts[i] += 1
        client.close()

    run_threads(one, streams, go)


def run_threads(one, streams: int, go: threading.Event) -> None:
    """``one(i)`` for every stream, each on its own thread, started together by ``go``."""
    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # every client built and waiting
    go.set()
    for thread in threads:
        thread.join()


def read_pumped(base: str, streams: int, counts: list[int], go: threading.Event) -> None:
    from integrations.ollama import OllamaClient

    def one(i: int) -> None:
        client = OllamaClient(base_url=base)
        go.wait()

        def on_item(item) -> None:
            if isinstance(item, str):
                counts[i] += 1

        stream = client.chat_stream(model="m", messages=[{"role": "user", "content": f"s{i}"}])
        stream.pump(on_item)
        client.close()

    run_threads(one, streams, go)


def read_aiohttp(port: int, streams: int, counts: list[int], go: threading.Event) -> None:
    import aiohttp

    async def one(session, i: int) -> None:
        url = f"http://127.0.0.1:{port}/api/chat"
        async with session.post(url, data=body(i)) as response:
            async for line in response.content:  # one NDJSON line at a time
                if line.strip():
                    if json.loads(line).get("done"):
                        return
                    counts[i] += 1

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            go.set()
            await asyncio.gather(*(one(session, i) for i in range(streams)))

    asyncio.run(main())


def read_selector(port: int, streams: int, counts: list[int], go: threading.Event) -> None:
    selector = selectors.DefaultSelector()
    go.set()
    for i in range(streams):
        sock = socket.create_connection(("127.0.0.1", port))
        data = body(i)
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data) + data
        )
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [i, b""])
    open_streams = streams
    while open_streams:
        for key, _ in selector.select():
            state = key.data
            data = key.fileobj.recv(65536)
            lines = (state[1] + data).split(b"\r\n")
            state[1] = lines.pop()
            done = not data
            for line in lines:
                if line.startswith(b"{"):  # a chunk's data; sizes and headers are not JSON
                    if json.loads(line).get("done"):
                        done = True
                    else:
                        counts[state[0]] += 1
            if done:
                selector.unregister(key.fileobj)
                key.fileobj.close()
                open_streams -= 1


class Loop:
    """An asyncio loop on its own thread, ticking every TICK with a socket-pair round trip."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.late: list[float] = []
        self.cpu = 0.0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._ticks())

    async def _ticks(self):
        a, b = socket.socketpair()
        start = time.thread_time()
        due = time.perf_counter()
        while self.running:
            due += TICK
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            self.late.append((time.perf_counter() - due) * 1000)
            for _ in range(SENDS):
                a.send(b"x")
                b.recv(1)
            due = max(due, time.perf_counter() - TICK)  # a late tick does not pile up more
        self.cpu = time.thread_time() - start
        a.close()
        b.close()

    def stop(self):
        self.running = False
        self.thread.join()


def measure(mode: str, port: int, streams: int) -> dict:
    counts = [0] * streams
    go = threading.Event()
    loop = Loop()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    loop.thread.start()
    if mode == "threads":
        read_threads(f"http://127.0.0.1:{port}", streams, counts, go)
    elif mode == "pumped":
        read_pumped(f"http://127.0.0.1:{port}", streams, counts, go)
    elif mode == "aiohttp":
        read_aiohttp(port, streams, counts, go)
    else:
        read_selector(port, streams, counts, go)
    wall = time.perf_counter() - started
    loop.stop()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tokens = sum(counts)
    late = sorted(loop.late)
    return {
        "tokens": tokens,
        "wall": wall,
        "us_per_token": (cpu - loop.cpu) / tokens * 1e6,
        "switches": after.ru_nvcsw - before.ru_nvcsw,
        "late_p50": late[len(late) // 2],
        "late_p99": late[int(len(late) * 0.99)],
        "ticks": len(late) / (wall / TICK),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake:
        fake(args.tokens)
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
    os.environ.setdefault("DEBUG", "1")  # dev settings: the client reads OLLAMA_* only
    import django

    django.setup()
    server = subprocess.Popen(  # noqa: S603 - this script, as the fake
        [sys.executable, __file__, "--fake", "--tokens", str(args.tokens)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the fake's tracebacks of connections closed at the end
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        results: dict[str, list[dict]] = {"threads": [], "pumped": [], "selector": []}
        if importlib.util.find_spec("aiohttp") is not None:  # requirements-dev.txt
            results["aiohttp"] = []
        for _ in range(args.repeat):
            for mode in results:
                results[mode].append(measure(mode, port, args.streams))
    finally:
        server.terminate()
        server.wait(10)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load}")
    print(
        f"{args.streams} streams x {args.tokens} tokens at {PACE * 1000:g} ms; a loop thread "
        f"ticking every {TICK * 1000:g} ms ({SENDS} round trips) beside the readers; "
        f"medians of {args.repeat}"
    )
    for mode, runs in results.items():

        def med(key, runs=runs):
            return statistics.median(run[key] for run in runs)

        print(
            f"  {mode:8}: {int(med('tokens'))} tokens in {med('wall'):.2f} s; readers' CPU "
            f"{med('us_per_token'):.1f} us/token; {int(med('switches'))} voluntary switches; "
            f"loop ticks late p50 {med('late_p50'):.1f} ms, p99 {med('late_p99'):.1f} ms, "
            f"{med('ticks') * 100:.0f}% of ticks done"
        )


if __name__ == "__main__":
    main()
