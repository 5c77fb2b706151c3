import asyncio

from jobcast.hub import Hub


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    hub = Hub(tick_seconds=60)
    first = asyncio.create_task(hub.wait("job"))
    second = asyncio.create_task(hub.wait("job"))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    hub.notify("job")
    await asyncio.wait_for(second, 5)  # woken by the notify, not cancelled with the first
    assert first.cancelled() and not second.cancelled()
    await hub.close()
