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
