"""gateway.core.logging: the log context is bound for a block and restored exactly afterwards."""

import asyncio

import structlog

from gateway.core.logging import log_context


def test_log_context_binds_then_restores_what_was_there():
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id="outer")
    with log_context(request_id="inner", agency="0100000000"):
        assert structlog.contextvars.get_contextvars() == {"request_id": "inner", "agency": "0100000000"}
        with log_context(agency="1550100000"):
            assert structlog.contextvars.get_contextvars()["agency"] == "1550100000"
        assert structlog.contextvars.get_contextvars()["agency"] == "0100000000"
    assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}
    structlog.contextvars.clear_contextvars()


def test_log_context_is_restored_after_an_error_and_is_per_task():
    structlog.contextvars.clear_contextvars()

    async def one(name):
        with log_context(request_id=name):
            await asyncio.sleep(0)
            return structlog.contextvars.get_contextvars()["request_id"]

    async def main():
        return await asyncio.gather(one("a"), one("b"))

    assert asyncio.run(main()) == ["a", "b"]
    try:
        with log_context(request_id="x"):
            raise ValueError
    except ValueError:
        pass
    assert structlog.contextvars.get_contextvars() == {}
