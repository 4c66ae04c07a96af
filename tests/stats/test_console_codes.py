"""Every console page shows codes as a clerk reads them: speed, secrecy, delivery status and route in
Thai first, the code beside it in brackets (``ด่วน (urgent)``), never a bare English code."""

from __future__ import annotations

import re

from gateway.core import appkeys as keys
from gateway.core.envelope import SECRECY_TH, SPEED_TH, Secrecy
from gateway.core.labels import ROUTE_TH, STATUS_TH
from tests.audit.conftest import login
from tests.stats.helpers import auth, refuse, take
from tests.support import CMI, KKN, MOI, OPM, letter_bytes

LABELS = {**{s.value: th for s, th in SPEED_TH.items()}, **{s.value: th for s, th in SECRECY_TH.items()},
          **STATUS_TH, **ROUTE_TH}
# (normal is both a speed and a secrecy: ปกติ either way)
BARE = re.compile(r"(?<![\w./:-])(" + "|".join(sorted(map(re.escape, LABELS), key=len, reverse=True))
                  + r")(?![\w-])")
CODED = re.compile(r'(\S+) (?:<span class="code">)?\(([a-z_-]+)\)(?:</span>)?')


def problems(html: str) -> tuple[list[str], set[str]]:
    """Bare codes in what a person reads, and the codes shown with their label (Thai, then the code)."""
    body = html.split("<main", 1)[1] if "<main" in html else html
    body = re.sub(r'<span class="en">.*?</span>', " ", body, flags=re.S)  # English glosses of Thai labels
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    found, shown = [], set()
    for label, code in CODED.findall(body):
        if code not in LABELS:  # another kind of code (a directory kind, a certificate's state)
            continue
        shown.add(code)
        if not label.endswith(LABELS[code].split()[-1]):
            found.append(f"{code!r} beside {label!r}, not {LABELS.get(code)!r}")
    text = re.sub(r"<[^>]*>", " ", CODED.sub(" ", body))  # tags and their attributes are not read
    found += [f"bare {m.group(1)!r} in …{text[max(0, m.start() - 40):m.end() + 20]!r}…" for m in BARE.finditer(text)]
    return found, shown


async def test_no_console_page_shows_a_bare_english_code(app_client):
    client = await app_client()
    pool = client.app[keys.POOL]
    for i, (recipients, secrecy) in enumerate((((CMI, KKN), Secrecy.CONFIDENTIAL), ((CMI,), Secrecy.SECRET),
                                               ((KKN, MOI), Secrecy.NORMAL))):
        r = await client.post("/v1/messages", data=letter_bytes(recipients=recipients, secrecy=secrecy,
                                                                message_id=f"codes-{i}"), headers=auth(OPM))
        assert r.status == 202, await r.text()
    await take(client, CMI, "codes-0")
    await refuse(pool, "codes-1", CMI, at=client.app[keys.CLOCK].now())
    await client.app[keys.STATS_JOB].run_now()
    pks = [r["pk"] for r in await pool.fetch("SELECT pk FROM messages ORDER BY pk")]
    assert (await login(client, "admin")).status == 302

    pages = ["/console/letters", "/console/letters?status=dead", "/console/letters?status=delivered",
             *(f"/console/letters/{pk}" for pk in pks), "/console/queues", "/console/dead", "/console/directory",
             f"/console/directory/{CMI}", f"/console/directory/{OPM}", "/console/certificates", "/console/audit",
             "/console/stats", "/console/stats?grain=hour", "/console/stats/service", "/console/stats/failures"]
    shown: set[str] = set()
    bad = {}
    for path in pages:
        r = await client.get(path, allow_redirects=False)
        assert r.status == 200, (path, r.status)
        found, codes = problems(await r.text())
        shown |= codes
        if found:
            bad[path] = found
    assert bad == {}
    # the pages really showed the codes (else the check above proves nothing)
    assert {"urgent", "confidential", "secret", "normal", "delivered", "dead", "inbox", "pull"} <= shown, shown


def test_the_check_finds_a_bare_code():
    assert problems("<main><td>urgent</td></main>")[0]
    assert problems('<main><td>ปกติ <span class="code">(secret)</span></td></main>')[0]
    assert problems('<main><td>ลับมาก <span class="code">(secret)</span> '
                    '<span class="en">dead letters</span> <a href="/x/inbox">x</a></td></main>') == ([], {"secret"})
