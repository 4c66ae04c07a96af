"""Letters to distribution lists, accepted on a real database: expanded at acceptance, frozen, refused
when the list does not exist, and thousands of deliveries in one letter."""

from __future__ import annotations

import dataclasses
import json

import pytest

from adapters.pull import PullAdapter
from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.core.envelope_builder import build_envelope
from gateway.core.errors import ConfigError, EnvelopeError
from gateway.core.lists import DistributionList, Rule, load_lists, members_digest
from gateway.core.metrics import Metrics
from gateway.core.sealing import DigestOnlySealer
from gateway.exchange.accept import Acceptance
from gateway.exchange.stamps import Stamps
from gateway.intake.checks import Intake
from gateway.storage import lists as lists_store
from tests.support import OPM, letter

MOI = "1500000000"
HALLS = DistributionList("provincial-halls", "ศาลากลางจังหวัดทุกจังหวัด", None, Rule("provincial_administration"))
NORTH = DistributionList("north-districts", "ที่ว่าการอำเภอ จ.เชียงใหม่", None, Rule("district_office", province="50"))


def _agency(code: str, kind: str, province: str | None = None, parent: str | None = None) -> dict:
    return {"code": code, "name_th": f"หน่วยงาน {code}", "name_en": f"Agency {code}", "kind": kind,
            "province": province, "parent": parent, "route": {"kind": "pull"}}


def directory_dict(halls: int = 3, districts: int = 2) -> dict:
    """OPM (the sender, itself listed as a provincial hall to show the sender is left out), MOI,
    ``halls`` provincial halls and ``districts`` district offices in province 50."""
    agencies = [_agency(OPM, "provincial_administration", "10"), _agency(MOI, "ministry")]
    agencies += [_agency(f"15{i:06d}00", "provincial_administration", f"{10 + i % 80:02d}", MOI)
                 for i in range(1, halls + 1)]
    agencies += [_agency(f"1560{i:04d}00", "district_office", "50", MOI) for i in range(1, districts + 1)]
    return {"agencies": agencies}


def acceptance(pool, directory: Directory) -> Acceptance:
    clock = FakeClock()
    return Acceptance(
        pool=pool, directory=directory,
        intake=Intake(directory, max_bytes=64 << 20, lists=lists_store.source(pool)),
        sealer=DigestOnlySealer(), adapters={"pull": PullAdapter()}, ttl_s=86400.0, clock=clock,
        metrics=Metrics(), stamps=Stamps(pool=pool, directory=directory, clock=clock, enabled=False),
        admission=None, wake=lambda: None, gateway_code="0000000000")


def to_lists(*names: str, recipients: tuple[str, ...] = (), message_id: str = "circular-1") -> bytes:
    env = letter(recipients=recipients, message_id=message_id)
    return build_envelope(dataclasses.replace(env, header=dataclasses.replace(env.header, recipient_lists=names)))


async def deliveries(pool) -> list[str]:
    return [r["recipient"] for r in await pool.fetch("SELECT recipient FROM deliveries ORDER BY recipient")]


async def test_a_rule_list_is_expanded_into_one_delivery_per_member(pool):
    directory = Directory.from_dict(directory_dict(halls=3, districts=2))
    await lists_store.upsert(pool, [HALLS, NORTH], at=FakeClock().now())
    district = "1560000100"
    result = await acceptance(pool, directory).submit(
        to_lists("provincial-halls", "north-districts", recipients=(district, "1500000100")), agency=OPM)

    halls = ["1500000100", "1500000200", "1500000300"]  # OPM is a hall too, but the sender is left out
    assert await deliveries(pool) == sorted({*halls, "1560000100", "1560000200"})
    rows = await lists_store.expansions(pool, result.message_pk)
    assert rows == [
        lists_store.Expansion("north-districts", 0, 2, members_digest(["1560000100", "1560000200"])),
        lists_store.Expansion("provincial-halls", 0, 3, members_digest(halls)),
    ]
    event = await pool.fetchrow("SELECT details FROM audit_events WHERE kind = 'message.accepted'")
    assert event["details"]["recipient_lists"] == {"provincial-halls": 3, "north-districts": 2}
    assert event["details"]["deliveries"] == 5


async def test_the_expansion_is_frozen_when_the_directory_changes(pool):
    data = directory_dict(halls=3)
    directory = Directory.from_dict(data)
    await lists_store.upsert(pool, [HALLS], at=FakeClock().now())
    accept = acceptance(pool, directory)
    first = await accept.submit(to_lists("provincial-halls", message_id="before"), agency=OPM)
    before = await deliveries(pool)
    assert len(before) == 3

    # One hall leaves, two arrive: the letter already sent keeps its recipients; a new one sees the change.
    changed = {"agencies": [a for a in data["agencies"] if a["code"] != "1500000100"]
               + [_agency("1599999900", "provincial_administration", "20", MOI),
                  _agency("1599999800", "provincial_administration", "21", MOI)]}
    directory.replace(Directory.from_dict(changed, version=7))
    second = await accept.submit(to_lists("provincial-halls", message_id="after"), agency=OPM)

    async def of(pk: int) -> list[str]:
        return [r["recipient"] for r in await pool.fetch(
            "SELECT recipient FROM deliveries WHERE message_pk = $1 ORDER BY recipient", pk)]

    assert await of(first.message_pk) == before
    assert await of(second.message_pk) == ["1500000200", "1500000300", "1599999800", "1599999900"]
    assert [(e.directory_version, e.member_count) for e in await lists_store.expansions(pool, first.message_pk)] \
        == [(0, 3)]
    assert [(e.directory_version, e.member_count) for e in await lists_store.expansions(pool, second.message_pk)] \
        == [(7, 4)]


async def test_an_unknown_list_is_refused_naming_it_and_nothing_is_stored(pool):
    directory = Directory.from_dict(directory_dict())
    await lists_store.upsert(pool, [HALLS], at=FakeClock().now())
    with pytest.raises(EnvelopeError) as err:
        await acceptance(pool, directory).submit(to_lists("provincial-halls", "no-such-list"), agency=OPM)
    assert err.value.code == "envelope.unknown_recipient"
    assert err.value.field == "Header/Recipients/RecipientList[2]"
    counts = await pool.fetchrow("SELECT (SELECT count(*) FROM messages) AS m, (SELECT count(*) FROM deliveries) AS d,"
                                 " (SELECT count(*) FROM list_expansions) AS e")
    assert tuple(counts) == (0, 0, 0)
    refused = await pool.fetchrow("SELECT details FROM audit_events WHERE kind = 'message.rejected'")
    assert refused["details"]["field"] == "Header/Recipients/RecipientList[2]"


async def test_a_gateway_without_lists_refuses_a_list(pool):
    directory = Directory.from_dict(directory_dict())
    intake = Intake(directory, max_bytes=1 << 20)
    with pytest.raises(EnvelopeError) as err:
        await intake.check(to_lists("provincial-halls"), agency=OPM)
    assert (err.value.code, err.value.field) == ("envelope.unknown_recipient", "Header/Recipients/RecipientList[1]")


async def test_a_letter_to_thousands_of_offices_gets_one_delivery_each(pool):
    n = 6000  # more than the 5,000 explicit recipients an envelope may name
    directory = Directory.from_dict(directory_dict(halls=n))
    await lists_store.upsert(pool, [HALLS], at=FakeClock().now())
    result = await acceptance(pool, directory).submit(to_lists("provincial-halls"), agency=OPM)
    assert await pool.fetchval("SELECT count(DISTINCT recipient) FROM deliveries WHERE message_pk = $1",
                               result.message_pk) == n
    progress = await lists_store.progress(pool, result.message_pk)
    assert progress.total == n and progress.by_status["inbox"] == n and progress.by_status["delivered"] == 0
    page = await lists_store.recipients_page(pool, result.message_pk, limit=100)
    assert [s.recipient for s in page.items] == [f"15{i:06d}00" for i in range(1, 101)]
    page2 = await lists_store.recipients_page(pool, result.message_pk, after=page.next_after, limit=100)
    assert page2.items[0].recipient == "1500010100"
    last = await lists_store.recipients_page(pool, result.message_pk, after="1500599900", limit=100)
    assert [s.recipient for s in last.items] == ["1500600000"] and last.next_after is None


async def test_lists_upsert_and_read_back(pool):
    static = DistributionList("two", "สองหน่วยงาน", ("1500000100", "1500000200"), None, ecms_code="99002")
    await lists_store.upsert(pool, [HALLS, static], at=FakeClock().now())
    await lists_store.upsert(pool, [dataclasses.replace(HALLS, name_th="ศาลากลาง")], at=FakeClock().now())
    assert await lists_store.all_lists(pool) == [dataclasses.replace(HALLS, name_th="ศาลากลาง"), static]
    assert await lists_store.by_ecms_codes(pool, ["99002", "99003"]) == {"99002": static}


async def test_a_list_named_by_its_ecms_code_is_the_same_list(pool):
    directory = Directory.from_dict(directory_dict(halls=2))
    await lists_store.upsert(pool, [dataclasses.replace(HALLS, ecms_code="99001")], at=FakeClock().now())
    result = await acceptance(pool, directory).submit(to_lists("99001", "provincial-halls"), agency=OPM)
    assert await deliveries(pool) == ["1500000100", "1500000200"]
    assert [(e.list_name, e.member_count) for e in await lists_store.expansions(pool, result.message_pk)] \
        == [("provincial-halls", 2)]


async def test_seeding_from_a_directory_file(pool, tmp_path):
    path = tmp_path / "directory.json"
    path.write_text(json.dumps({**directory_dict(), "lists": [HALLS.to_dict(), {**NORTH.to_dict(), "ecms_code": "99001"}]},
                               ensure_ascii=False), encoding="utf-8")
    await lists_store.upsert(pool, load_lists(path), at=FakeClock().now())
    assert [x.name for x in await lists_store.all_lists(pool)] == ["north-districts", "provincial-halls"]
    # a code already taken by another list: refused, naming the entry, nothing changed
    with pytest.raises(ConfigError) as err:
        await lists_store.upsert(pool, [dataclasses.replace(HALLS, name_th="ใหม่", ecms_code="99001")],
                                 at=FakeClock().now())
    assert (err.value.code, err.value.field) == ("config.invalid", "lists[0].ecms_code")
    assert (await lists_store.get_many(pool, ["provincial-halls"]))["provincial-halls"] == HALLS


async def test_a_list_with_no_member_but_the_sender_is_a_letter_to_nobody(pool):
    directory = Directory.from_dict(directory_dict(halls=0))  # OPM, the sender, is the only hall
    await lists_store.upsert(pool, [HALLS], at=FakeClock().now())
    with pytest.raises(EnvelopeError) as err:
        await acceptance(pool, directory).submit(to_lists("provincial-halls"), agency=OPM)
    assert (err.value.code, err.value.field) == ("envelope.unknown_recipient", "Header/Recipients/RecipientList[1]")
    assert "nobody" in err.value.message
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    # with an agency named as well, the letter goes to that agency
    result = await acceptance(pool, directory).submit(to_lists("provincial-halls", recipients=(MOI,)), agency=OPM)
    assert await deliveries(pool) == [MOI]
    assert [e.member_count for e in await lists_store.expansions(pool, result.message_pk)] == [0]
