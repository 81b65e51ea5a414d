"""Per-lane locks keep each lane's messages in arrival order and leave nothing behind."""

from __future__ import annotations

import asyncio

from bot.lane_locks import LaneLocks


async def test_one_users_tasks_run_in_arrival_order_and_others_are_not_held_up() -> None:
    locks, order = LaneLocks(), []

    async def handle(user: str, index: int, delay: float) -> None:
        async with locks.hold(user):
            await asyncio.sleep(delay)
            order.append((user, index))

    # The first message of "a" is the slowest: without the lock, a's later messages would finish first.
    await asyncio.gather(handle("a", 0, 0.05), handle("a", 1, 0.0), handle("a", 2, 0.0), handle("b", 0, 0.0))
    assert [i for user, i in order if user == "a"] == [0, 1, 2]
    assert order.index(("b", 0)) < order.index(("a", 0))
    assert len(locks) == 0


async def test_entry_is_dropped_even_when_the_holder_raises() -> None:
    locks = LaneLocks()

    async def fail() -> None:
        async with locks.hold("a"):
            raise RuntimeError("boom")

    results = await asyncio.gather(fail(), fail(), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(locks) == 0
