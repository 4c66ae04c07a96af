"""bench/budget.py: which stage a sampled stack is given, and which HTTP samples are the event loop's alone."""

from bench.budget import LOOP, OTHER, classify, loop_alone

ROOT = ["<module> (gateway/cli/main.py:400)", "_run (gateway/cli/main.py:356)", "run (uvloop/__init__.py:92)",
        "Runner.run (asyncio/runners.py:118)"]


def test_a_sample_under_the_loop_alone_is_http_and_counted_apart():
    assert classify(ROOT) == "HTTP" and loop_alone(ROOT)
    handler = [*ROOT, "RequestHandler.data_received (aiohttp/web_protocol.py:446)"]
    assert classify(handler) == "HTTP" and not loop_alone(handler)
    asyncio_loop = [*ROOT[:2], "BaseEventLoop._run_once (asyncio/base_events.py:1922)"]
    assert classify(asyncio_loop) == "HTTP" and loop_alone(asyncio_loop)


def test_a_sample_with_a_stage_frame_is_that_stage_not_the_loop():
    db = [*ROOT, "Connection._do_execute (asyncpg/connection.py:2035)"]
    assert classify(db) == "database client" and not loop_alone(db[:-1] + ["x (gateway/storage/messages.py:1)"])
    accept = [*ROOT, "submit_message (gateway/http/api.py:215)", "Acceptance.store (gateway/exchange/accept.py:180)"]
    assert classify(accept) == OTHER
    assert LOOP not in {classify(s) for s in (ROOT, db, accept)}
