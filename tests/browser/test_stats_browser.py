"""The statistics pages in a real browser, without JavaScript: Thai labels, Buddhist-era dates, SVG charts,
and figures that match the letters this test sends, delivers, answers, refuses and lets die."""

from __future__ import annotations

import pytest

from gateway.core import appkeys as keys
from gateway.core.envelope import NotifierKind
from tests.audit.conftest import PASSWORD
from tests.browser.conftest import ARTIFACTS
from tests.stats.helpers import answer, auth, refuse, send, take
from tests.support import CMI, KKN, MOI, OPM, letter_bytes

pytestmark = pytest.mark.browser


async def _letters(client) -> None:
    clock = client.app[keys.CLOCK]
    for i in range(4):
        await send(client, OPM, (CMI, KKN), f"b-{i}", subject=f"ขอเชิญประชุมครั้งที่ {i + 1}")
    await send(client, KKN, (CMI,), "b-kkn")
    for _bad in range(2):  # an integrator's broken system: the same refusal twice
        r = await client.post("/v1/messages", data=letter_bytes(sender=OPM, recipients=("1999999999",)),
                              headers=auth(OPM))
        assert r.status == 422
    clock.advance(120)
    for i in range(3):
        await take(client, CMI, f"b-{i}")  # two minutes after acceptance
    clock.advance(1800)
    await answer(client, CMI, OPM, "b-0", NotifierKind.RECEIVED)
    await answer(client, CMI, OPM, "b-1", NotifierKind.ACCEPTED)
    await take(client, KKN, "b-0")  # KKN: about half an hour, and its registry never answers
    await refuse(client.app[keys.POOL], "b-3", KKN, at=clock.now())
    await client.app[keys.STATS_JOB].run_now()


async def _login(browser, base: str, username: str):
    ctx = await browser.new_context(java_script_enabled=False, locale="th-TH")
    page = await ctx.new_page()
    await page.goto(f"{base}/console/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/letters")
    return ctx, page


async def test_the_statistics_pages_show_the_letters_of_the_test(app_client, browser):
    client = await app_client()
    await _letters(client)
    base = str(client.make_url("")).rstrip("/")
    ctx, page = await _login(browser, base, "operator")

    # volumes: reached from the header; today's figures; BE dates; the charts are SVG with a bar per day
    await page.click("header >> text=สถิติ")
    await page.wait_for_url("**/console/stats")
    assert "ปริมาณหนังสือ" in await page.inner_text("h1")
    figures = {k: await page.inner_text(f"#totals [data-figure={k}]")
               for k in ("letters", "delivered", "dead", "answered", "registered")}
    assert figures == {"letters": "5", "delivered": "4", "dead": "1", "answered": "1", "registered": "1"}
    period = await page.inner_text("p.period")
    assert "22 พ.ย. 2569" in period and "16 พ.ย. 2569" in period, period
    assert "22 พ.ย. 2569" in await page.inner_text("#volumes")
    assert await page.locator("figure.chart svg").count() == 3
    assert await page.locator("figure.chart svg rect").count() >= 3
    await page.screenshot(path=str(ARTIFACTS / "stats-volumes.png"), full_page=True)

    # per hour, for the ministry of interior's subtree, as receivers: CMI and KKN got 9 letters
    await page.select_option("select[name=scope]", "ministry")
    await page.fill("input[name=code]", MOI)
    await page.select_option("select[name=grain]", "hour")
    await page.select_option("select[name=side]", "recipient")
    await page.fill("input[name=since]", "2569-11-22")
    await page.fill("input[name=until]", "2569-11-22")
    await page.click("form.search button[type=submit]")
    await page.wait_for_url("**grain=hour*")
    assert await page.inner_text("#totals [data-figure=letters]") == "9"
    assert "22 พ.ย. 2569 10:00 น." in await page.inner_text("#volumes")
    await page.screenshot(path=str(ARTIFACTS / "stats-volumes-ministry-hourly.png"), full_page=True)

    # service levels as receivers: KKN the slowest; KKN's registry never answers; CMI's answer times
    await page.goto(f"{base}/console/stats/service?since=2569-11-22&until=2569-11-22")
    assert "ระดับการให้บริการ" in await page.inner_text("h1")
    slowest = page.locator("#slowest tbody tr")
    assert await slowest.first.get_attribute("data-agency") == KKN
    assert await page.locator(f"#silent tr[data-agency='{KKN}']").count() == 1
    assert await page.locator(f"#silent tr[data-agency='{CMI}']").count() == 0
    cmi = await page.inner_text(f"#agencies tr[data-agency='{CMI}']")
    assert "ศาลากลางจังหวัดเชียงใหม่" in cmi and "≤ 3 นาที" in cmi and "≤ 35 นาที" in cmi, cmi  # 120 s, 1800 s
    assert "≤ 3 นาที" in await page.inner_text("#overall")  # p50 of 120 s (bucket edge 128 s, rounded up)
    await page.screenshot(path=str(ARTIFACTS / "stats-service.png"), full_page=True)

    # failures: KKN holds a dead letter since today; OPM's refusals by code
    await page.goto(f"{base}/console/stats/failures")
    assert "ความขัดข้อง" in await page.inner_text("h1")
    row = await page.inner_text(f"#open tr[data-agency='{KKN}']")
    assert "ศาลากลางจังหวัดขอนแก่น" in row and "2569" in row, row
    refusal = await page.inner_text(f"#refusals tr[data-agency='{OPM}']")
    assert "envelope.unknown_recipient" in refusal and "\t2\t" in refusal, refusal
    await page.screenshot(path=str(ARTIFACTS / "stats-failures.png"), full_page=True)

    # a day that does not exist is refused politely, naming the field
    await page.goto(f"{base}/console/stats?since=2569-02-29")
    text = await page.inner_text("main")
    assert "ไม่มีวันที่ 29" in text and "(since)" in text and "request.invalid" in text, text
    await page.screenshot(path=str(ARTIFACTS / "stats-refused-date.png"), full_page=True)
    await ctx.close()


async def test_an_agency_user_sees_its_own_figures(app_client, browser):
    client = await app_client()
    await _letters(client)
    base = str(client.make_url("")).rstrip("/")
    ctx, page = await _login(browser, base, "clerk")  # a user of OPM
    await page.goto(f"{base}/console/stats")
    assert await page.inner_text("#totals [data-figure=letters]") == "4"  # OPM's letters, not KKN's
    await page.goto(f"{base}/console/stats?scope=exchange")
    assert "ไม่มีสิทธิ์" in await page.inner_text("main")
    await page.screenshot(path=str(ARTIFACTS / "stats-agency-forbidden.png"), full_page=True)
    await ctx.close()
