"""The console in a real browser: log in, find a letter, open its timeline, requeue a dead letter."""

import pytest

from gateway.core import appkeys as keys
from tests.audit.conftest import PASSWORD
from tests.browser.conftest import ARTIFACTS
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes

pytestmark = pytest.mark.browser


async def test_operator_finds_a_letter_and_requeues_a_dead_delivery(app_client, browser):
    client = await app_client()
    pool = client.app[keys.POOL]
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    for subject in ("ขอเชิญประชุมคณะกรรมการจังหวัด", "ขออนุมัติงบประมาณโครงการถนน", "รายงานผลการดำเนินงาน"):
        assert (await client.post("/v1/messages", data=letter_bytes(recipients=(CMI, KKN), subject=subject),
                                  headers=headers)).status == 202
    pk = await pool.fetchval("SELECT pk FROM messages WHERE subject LIKE '%งบประมาณ%'")
    dead = await pool.fetchval("UPDATE deliveries SET status = 'dead', last_error = 'HTTP 410 Gone' "
                               "WHERE message_pk = $1 AND recipient = $2 RETURNING id", pk, KKN)
    base = str(client.make_url("")).rstrip("/")
    page = await browser.new_page(locale="th-TH")

    await page.goto(f"{base}/console/letters")
    assert "/console/login" in page.url  # not logged in: sent to the login form
    await page.fill("input[name=username]", "operator")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/letters")

    await page.fill("input[name=subject]", "งบประมาณ")
    await page.click("form.search button[type=submit]")
    await page.wait_for_url("**subject=*")
    rows = page.locator("tbody tr")
    assert await rows.count() == 1
    await page.screenshot(path=str(ARTIFACTS / "console-search.png"), full_page=True)

    await page.click("text=ขออนุมัติงบประมาณโครงการถนน")
    await page.wait_for_url(f"**/console/letters/{pk}")
    timeline = page.locator("ol.timeline li")
    assert await timeline.count() >= 2
    assert "รับเข้าระบบ" in await timeline.first.inner_text()
    assert "2569" in await page.inner_text("ol.timeline")  # Buddhist era for people
    await page.screenshot(path=str(ARTIFACTS / "console-timeline.png"), full_page=True)

    await page.click("header >> text=ส่งไม่สำเร็จ")
    await page.wait_for_url("**/console/dead")
    row = page.locator(f"tr[data-delivery='{dead}']")
    assert "HTTP 410 Gone" in await row.inner_text()
    await row.locator("button[type=submit]").click()
    await page.wait_for_url("**/console/dead?requeued=*")
    assert "นำกลับเข้าคิวแล้ว" in await page.inner_text("[role=status]")
    await page.screenshot(path=str(ARTIFACTS / "console-requeued.png"), full_page=True)
    assert await pool.fetchval("SELECT status::text FROM deliveries WHERE id = $1", dead) == "inbox"
    assert await pool.fetchval("SELECT actor FROM audit_events WHERE kind = 'delivery.requeued'") == "user:operator"


async def test_auditor_verifies_the_chain_without_javascript(app_client, browser):
    client = await app_client()
    base = str(client.make_url("")).rstrip("/")
    ctx = await browser.new_context(java_script_enabled=False)
    page = await ctx.new_page()
    await page.goto(f"{base}/console/login")
    await page.fill("input[name=username]", "auditor")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(f"{base}/console/audit")
    await page.click("text=ตรวจสอบสายโซ่ตอนนี้")
    assert "ถูกต้อง" in await page.inner_text("#verify-result")
    await page.screenshot(path=str(ARTIFACTS / "console-audit.png"), full_page=True)
    await ctx.close()
