"""The server's memory stays bounded while many clients catch up on a big job at once."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import httpx

from jobcast.runner.process import BATCH_MAX
from jobcast.store.base import BATCH_BYTES
from jobcast.store.tail import TAIL_BYTES
from tests.helpers import async_wait_for, rss_kib, stalled_sse_request

MIB = 1024 * 1024
JOB_BYTES = 200 * MIB
#: clients start at positions spread over the job's last 24 MiB and read to its end: the last
#: 8 MiB from the in-memory tail, what lies before it from storage
SPAN_BYTES = 24 * MIB
CLIENTS = 100
STALLED = 3
# 1 MiB of printable lines, written 200 times, then the job stays running (its tail stays live).
PRODUCER = (
    "import sys, time\n"
    "block = b''.join(b'%07d %s\\n' % (i, b'x' * 120) for i in range(8192))[: 1 << 20]\n"
    f"for _ in range({JOB_BYTES // MIB}): sys.stdout.buffer.write(block)\n"
    "sys.stdout.flush()\n"
    "time.sleep(600)\n"
)


def _bound_mib() -> float:
    """What catching-up clients may add to the server's RSS, from the settings:
    - the live job's tail: at most TAIL_BYTES, its cached frames and shared joins included;
    - each client: one batch in flight (BATCH_BYTES, or one output event of up to the runner's
      BATCH_MAX), held as its events, their frames, the joined write, and what the transport
      holds of it while the client reads: 4 batches;
    - 32 MiB for what does not grow with clients: SQLite's page caches in the reader threads,
      the allocator's high-water marks, thread stacks.
    Measured: 66 MiB; 316 MiB before the tail counted its cached joins (one per cursor).
    """
    batch = max(BATCH_BYTES, BATCH_MAX)
    return (TAIL_BYTES + (CLIENTS + STALLED) * 4 * batch) / MIB + 32


async def _sse_to_end(session: aiohttp.ClientSession, url: str, after: int, last: int) -> int:
    got, carry = 0, b""
    async with session.get(url, headers={"Last-Event-ID": str(after)}) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_any():
            got += len(chunk)
            window = carry + chunk
            at = window.rfind(b"id: ")
            if at >= 0 and window.find(b"\n", at) > 0:
                if int(window[at + 4 : window.index(b"\n", at)]) >= last:
                    return got
            carry = window[-32:]
    raise AssertionError("the stream ended before the last event")


async def _ws_to_end(session: aiohttp.ClientSession, url: str, after: int, last: int) -> int:
    got = 0
    async with session.ws_connect(f"{url}?after={after}", max_msg_size=0) as ws:
        async for msg in ws:
            got += len(msg.data)
            # `{"seq":N,...`: the seq comes first in every event
            if int(msg.data[7 : msg.data.index(",")]) >= last:
                return got
    raise AssertionError("the WebSocket closed before the last event")


async def test_clients_catching_up_from_many_positions_keep_memory_bounded(
    server_factory, data_dir
):
    server = server_factory(data_dir, extra=["--max-output-bytes", str(2 * JOB_BYTES)]).start()
    api = httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30)
    job = (await api.post("/jobs", json={"argv": ["python3", "-c", PRODUCER]})).json()

    async def written() -> dict | None:
        j = (await api.get(f"/jobs/{job['id']}")).json()
        return j if j["stdout_bytes"] == JOB_BYTES else None

    done = await async_wait_for(written, within=120, interval=0.2)
    last, size = done["last_seq"], done["stdout_bytes"]
    assert server.proc is not None
    pid = server.proc.pid

    base = rss_kib(pid)
    peak = base
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_kib(pid))
            threading.Event().wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stalled = [
        await stalled_sse_request(
            server.port, f"/jobs/{job['id']}/events", "Last-Event-ID: 1\r\n", server.token
        )
        for _ in range(STALLED)
    ]
    try:
        first = last - last * SPAN_BYTES // size
        starts = [first + i * (last - first) // CLIENTS for i in range(CLIENTS)]
        async with aiohttp.ClientSession(server.url, headers=server.headers) as session:
            got = await asyncio.gather(
                *(
                    _sse_to_end(session, f"/jobs/{job['id']}/events", after, last)
                    if i % 2
                    else _ws_to_end(session, f"/jobs/{job['id']}/ws", after, last)
                    for i, after in enumerate(starts)
                )
            )
    finally:
        sampling = False
        sampler.join()
        for _, writer in stalled:
            writer.close()
        await api.post(f"/jobs/{job['id']}/cancel")
        await api.aclose()
    assert min(got) > 0 and sum(got) > CLIENTS * SPAN_BYTES // 3
    rise = (peak - base) / 1024
    bound = _bound_mib()
    print(f"RSS rose by {rise:.0f} MiB (bound {bound:.0f} MiB)")
    assert rise < bound, f"RSS rose by {rise:.0f} MiB, more than the {bound:.0f} MiB bound"
