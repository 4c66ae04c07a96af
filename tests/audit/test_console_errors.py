"""The console answers a domain error with a page in Thai (then English), never JSON, never a 500."""

from gateway.core import appkeys as keys
from gateway.http.console.errors import page_for
from pki.errors import PdfError
from tests.audit.conftest import login


async def test_a_refused_query_is_a_page_naming_the_problem(app_client):
    client = await app_client()
    assert (await login(client, "operator")).status in (302, 303)
    r = await client.get("/console/letters?since=not-a-date")
    text = await r.text()
    assert r.status == 400 and r.headers["Content-Type"].startswith("text/html")
    assert page_for("request.invalid")[1] in text and "not-a-date" in text and "request.invalid" in text


async def test_a_pki_error_on_a_console_action_is_a_page_too(app_client):
    client = await app_client()
    assert (await login(client, "operator")).status in (302, 303)

    async def refuse(*_a, **_kw):
        raise PdfError("the stamped PDF cannot be read")

    client.app[keys.EXCHANGE].operators.requeue = refuse
    page = await (await client.get("/console/dead")).text()
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = await client.post("/console/deliveries/00000000-0000-0000-0000-000000000001/requeue",
                          data={"csrf": csrf}, allow_redirects=False)
    text = await r.text()
    assert r.status == page_for("pdf.unreadable")[0] == 422
    assert "the stamped PDF cannot be read" in text and "pdf.unreadable" in text


async def test_a_buddhist_era_day_that_does_not_exist_shows_the_search_form_again_naming_the_field(app_client):
    # B.E. 2404 is C.E. 1861, not a leap year (2404 is one in the Christian era: a naive conversion
    # after parsing raised ValueError, a 500)
    client = await app_client()
    assert (await login(client, "clerk")).status in (302, 303)
    r = await client.get("/console/letters", params={"since": "2404-02-29", "subject": "ประชุม"})
    text = await r.text()
    assert r.status == 400 and r.headers["Content-Type"].startswith("text/html")
    assert '<form class="search"' in text  # the form again, as the person filled it in
    assert 'value="2404-02-29"' in text and 'value="ประชุม"' in text
    assert "ช่อง «ตั้งแต่» ไม่ถูกต้อง" in text and "(since)" in text
    assert "ไม่มีวันที่ 29 กุมภาพันธ์ พ.ศ. 2404 (พ.ศ. 2404 = ค.ศ. 1861 ไม่ใช่ปีอธิกสุรทิน)" in text
    assert 'name="since" aria-invalid="true"' in text and "request.invalid" in text

    r = await client.get("/console/letters", params={"until": "2569-04-31"})
    text = await r.text()
    assert r.status == 400 and "ช่อง «ถึง» ไม่ถูกต้อง" in text and "ไม่มีวันที่ 31 เมษายน พ.ศ. 2569" in text

    for ok in ("2567-02-29", "2024-02-29", "2569-11-22"):  # B.E. 2567 = C.E. 2024: a leap year
        r = await client.get("/console/letters", params={"since": ok, "until": ok})
        assert r.status == 200, (ok, (await r.text())[:300])
