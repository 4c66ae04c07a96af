"""bench/e2e.py --profile: the delivery side's stages (bench/budget.py) and the table and figures of
bench/e2e_budget.py. The stacks are py-spy's frames from a real ``bench/e2e.py --profile`` run."""

import uvloop

from bench.budget import DB_DELIVERY, DISPATCHER, LOOP, OTHER, StackSampler, classify, table
from bench.e2e_budget import EXCHANGES, ORDER, exchange_primitive, figures, measured_stages, sentence

ROOT = ['process 31583:"/work/main/.venv/bin/python -m gateway.cli.main serve"',
        'process 31705:"/work/main/.venv/bin/python -m gateway.cli.main serve"',
        "_run_module_as_main (<frozen runpy>:198)", "_run_code (<frozen runpy>:88)",
        "<module> (gateway/cli/main.py:381)", "main (gateway/cli/main.py:363)", "_run (gateway/cli/main.py:356)",
        "run (uvloop/__init__.py:92)", "Runner.run (asyncio/runners.py:118)"]
DELIVER = [*ROOT, "Dispatcher._deliver_one (gateway/delivery/dispatcher.py:245)"]
RECORD = [*DELIVER, "Dispatcher._attempt (gateway/delivery/dispatcher.py:296)",
          "Dispatcher._record_durably (gateway/delivery/dispatcher.py:307)",
          "call_with_retries (gateway/storage/db.py:62)"]
PUSH = [*DELIVER, "Dispatcher._attempt (gateway/delivery/dispatcher.py:277)", "PushAdapter.deliver (adapters/push.py:259)"]
CLAIM = [*ROOT, "Dispatcher.run (gateway/delivery/dispatcher.py:149)",
         "Dispatcher.dispatch_once (gateway/delivery/dispatcher.py:184)", "claim_due (gateway/storage/deliveries.py:126)"]
#: A submission's sample (bench/submit.py's stacks): the HTTP handler, no dispatcher frame.
SUBMIT_DB = [*ROOT, "submit_message (gateway/http/api.py:215)", "Acceptance.store (gateway/exchange/accept.py:180)",
             "Connection._do_execute (asyncpg/connection.py:2069)"]
SUBMIT_STAGES = ["logging", "receipt", "seal", "trust", "database client", "signature verify", "parse + schema", OTHER,
                 "HTTP", LOOP]


def test_a_push_is_the_push_client_sent_from_the_dispatcher_or_answered_on_the_loop():
    send = [*PUSH, "Wire.post (adapters/wire.py:293)", "Wire._exchange (adapters/wire.py:312)",
            "_Connection.send (adapters/wire.py:126)"]
    wait = [*PUSH, "Wire.post (adapters/wire.py:282)", "Semaphore.locked (asyncio/locks.py:362)"]
    ack = [*DELIVER, "Dispatcher._attempt (gateway/delivery/dispatcher.py:277)",
           "PushAdapter.deliver (adapters/push.py:273)", "AckVerifier.verify (adapters/push.py:186)",
           "AckVerifier._check_digest (adapters/push.py:217)"]
    answer = [*ROOT, "_Connection.data_received (adapters/wire.py:136)", "_Connection._parse (adapters/wire.py:153)",
              "_Connection._head (adapters/wire.py:175)"]
    assert {classify(s) for s in (send, wait, ack, answer)} == {"push client"}


def test_the_dispatchers_database_work_is_the_delivery_database_client_and_the_submissions_is_not():
    fetch = [*CLAIM, "Pool.fetch (asyncpg/pool.py:746)", "Connection.fetch (asyncpg/connection.py:717)",
             "Connection._do_execute (asyncpg/connection.py:2069)"]
    transition = [*RECORD, "Dispatcher._record (gateway/delivery/dispatcher.py:327)",
                  "decide (gateway/delivery/transitions.py:42)", "transition (gateway/storage/transitions.py:86)"]
    committer = [*RECORD, "Dispatcher._record (gateway/delivery/dispatcher.py:330)",
                 "GroupCommitter.submit (gateway/storage/batching.py:42)"]
    assert {classify(s) for s in (fetch, transition, committer)} == {DB_DELIVERY}
    assert classify(SUBMIT_DB) == "database client"


def test_the_dispatchers_bookkeeping_is_its_own_not_http_nor_other():
    gather = [*ROOT, "Dispatcher._deliver_group (gateway/delivery/dispatcher.py:213)", "gather (asyncio/tasks.py:817)"]
    slot = [*DELIVER, "Dispatcher._attempt (gateway/delivery/dispatcher.py:270)",
            "_ContextManagerMixin.__aenter__ (asyncio/locks.py:15)", "Semaphore.acquire (asyncio/locks.py:397)"]
    metrics = [*DELIVER, "Dispatcher._attempt (gateway/delivery/dispatcher.py:292)",
               "Histogram.observe (prometheus_client/metrics.py:677)"]
    clock = [*RECORD, "Dispatcher._record (gateway/delivery/dispatcher.py:320)", "SystemClock.now (gateway/core/clock.py:16)"]
    # the receipt message's record (outside its signature) is the dispatcher's, not the database client's
    record = [*RECORD, "Dispatcher._record (gateway/delivery/dispatcher.py:323)",
              "ReceiptFactory.make (gateway/storage/receipts.py:94)", "uuid4 (uuid.py:723)"]
    assert {classify(s) for s in (gather, slot, metrics, clock, record)} == {DISPATCHER}


def test_a_delivery_receipts_signature_is_receipt_and_a_log_call_logging():
    make = [*RECORD, "Dispatcher._record (gateway/delivery/dispatcher.py:323)"]
    sign = [*make, "ReceiptFactory.make (gateway/storage/receipts.py:82)",
            "PkiSealer.sign_receipt (gateway/core/signing.py:227)", "WrittenReceipt.sign (pki/receipt_bytes.py:171)",
            "lean_signature_text (pki/xmlsig_lean.py:194)", "FileSigner.sign (pki/keys.py:196)"]
    build = [*make, "ReceiptFactory.make (gateway/storage/receipts.py:79)",
             "delivery_receipt_envelope (gateway/core/receipts.py:154)"]
    log = [*DELIVER, "Dispatcher._attempt (gateway/delivery/dispatcher.py:253)",
           "_LogContext.__exit__ (gateway/core/logging.py:81)"]
    assert [classify(sign), classify(build), classify(log)] == ["receipt", "receipt", "logging"]


def test_a_submit_profile_names_no_delivery_stage_and_an_end_to_end_one_does():
    """bench/submit.py's table takes every stage StackSampler.shares names: the delivery's stages appear
    only when sampled, so its table and its figures line are what they were."""
    sampler = StackSampler(pid=0)
    try:
        sampler.out.write_text(f"{';'.join(ROOT)} 3\n{';'.join(SUBMIT_DB)} 1\n")
        shares = sampler.shares()
        assert list(shares) == SUBMIT_STAGES
        assert shares["HTTP"] == shares[LOOP] == 0.75 and shares["database client"] == 0.25
        push = [*PUSH, "Wire.post (adapters/wire.py:293)"]
        with sampler.out.open("a") as f:
            f.write(f"{';'.join(push)} 2\n{';'.join(CLAIM)} 2\n")
        shares = sampler.shares()
        assert list(shares) == [*SUBMIT_STAGES[:4], "push client", *SUBMIT_STAGES[4:-1], DB_DELIVERY, LOOP]
        assert shares["push client"] == shares[DB_DELIVERY] == 0.25 and shares["HTTP"] == 0.375
        assert abs(sum(v for k, v in shares.items() if k != LOOP) - 1) < 1e-9
    finally:
        sampler.remove()


MEASURED = {"HTTP": 300.0, "parse + schema": 500.0, "signature verify": 500.0, "trust": 20.0, "seal": 300.0,
            "receipt": 200.0, "database client": 400.0, "logging": 10.0, OTHER: 200.0, "push client": 400.0,
            DISPATCHER: 300.0, DB_DELIVERY: 200.0}
PRIMITIVE = {"HTTP": 100.0, "parse + schema": 150.0, "signature verify": 130.0, "trust": 0.1, "seal": 100.0,
             "receipt": 120.0, "database client": 180.0, "logging": 10.0, "push client": 200.0, DB_DELIVERY: 100.0,
             "PostgreSQL": 1000.0, "offices": 200.0, "load generator": 50.0}
EXCHANGE = {"exchange_client_us": 50.0, "exchange_server_us": 50.0, "single_client_us": 180.0,
            "letter_client_us": 30.0, "single_pg_us": 600.0, "letter_pg_us": 250.0}


def test_the_stages_are_the_gateways_shares_and_the_other_processes_apart():
    gateway = sum(MEASURED.values())
    shares = {stage: us / gateway for stage, us in MEASURED.items()} | {LOOP: 100 / gateway}
    measured, loop_us = measured_stages(shares, {"gateway": gateway / 1000, "postgres": 1.6, "offices": 0.3,
                                                 "client": 0.15})
    assert abs(loop_us - 100) < 1e-9 and LOOP not in measured
    assert {k: round(v, 6) for k, v in measured.items()} == MEASURED | {"PostgreSQL": 1600.0, "offices": 300.0,
                                                                        "load generator": 150.0}


def test_the_figures_are_the_push_per_exchange_and_the_floors_at_1x_and_2x_the_primitives():
    measured = MEASURED | {"PostgreSQL": 1600.0, "offices": 300.0, "load generator": 150.0}
    f = figures(measured, PRIMITIVE, EXCHANGE, cores=2)
    assert f["push_letter_us"] == 700 and f["push_exchange_us"] == 700 / EXCHANGES
    assert f["push_exchange_primitive_us"] == 100 and f["batch8_saves_us"] == 700 * 7 / 8
    bare = MEASURED[OTHER] + MEASURED[DISPATCHER]  # no primitive: counted at their measured cost
    at_primitive = sum(PRIMITIVE.values())
    assert f["no_primitive_us"] == bare
    assert abs(f["floor_1x_ms"] - (at_primitive + bare) / 1000) < 1e-9
    assert abs(f["floor_2x_ms"] - (2 * at_primitive + bare) / 1000) < 1e-9
    assert f["target_ms"] == 4.0 and abs(f["floor_1x_per_s"] - 2000 / f["floor_1x_ms"]) < 1e-9
    # the submission's row committed 8 a commit: (180 - 30) + (600 - 250) µs less at 1x, twice that at 2x
    assert abs(f["floor_1x_ms"] - f["floor_1x_batched_ms"] - 0.5) < 1e-9
    assert abs(f["floor_2x_ms"] - f["floor_2x_batched_ms"] - 1.0) < 1e-9
    assert "4 exchanges × 175 µs" in sentence(f) and "500/s needs ≤ 4.0 ms" in sentence(f)


def test_the_table_renders_every_stage_in_order_with_its_primitive_and_ratio():
    measured = MEASURED | {"PostgreSQL": 1600.0, "offices": 300.0, "load generator": 150.0}
    text = table(measured, PRIMITIVE, {"push client": "4 exchanges"}, ORDER)
    lines = text.splitlines()
    assert lines[0].startswith("| stage | µs per letter | primitive µs | ratio |")
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:]] == [*ORDER, "**total**"]
    assert "| push client | 400 | 200 | 2.0× | 4 exchanges |" in lines
    assert f"| {DISPATCHER} | 300 | – | – |  |" in lines
    assert "| PostgreSQL | 1600 | 1000 | 1.6× |  |" in lines


def test_the_exchange_primitive_counts_the_client_and_the_minimal_server_apart():
    client, server = exchange_primitive(b"x" * 12000, clients=4, n=40, loop_factory=uvloop.new_event_loop)
    assert 0 < client < 5000 and 0 < server < 5000
