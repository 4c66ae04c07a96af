"""Evidence bundles of letters whose files travelled beside the envelope."""

from __future__ import annotations

import io
import os
import zipfile

from gateway.audit.verify import check_bundle
from gateway.core import appkeys as keys
from gateway.core.parts import build_related
from tests.integration.test_parts import external_letter
from tests.support import OPM, TOKENS, wait_for


async def test_bundle_carries_the_parts_and_names_a_swapped_one(app_client, signer):
    client = await app_client()
    pool = client.app[keys.POOL]
    big = os.urandom(1_500_000)
    body, ctype = build_related(external_letter(message_id="ev-big", content=big), {"att-2": ("image/tiff", big)})
    r = await client.post("/v1/messages", data=body, headers={"Authorization": f"Bearer {TOKENS[OPM]}",
                                                              "Content-Type": ctype})
    assert r.status == 202, await r.text()
    pk = await pool.fetchval("SELECT pk FROM messages WHERE message_id = 'ev-big'")
    sealer = client.app[keys.AUDIT_SEALER]

    async def covered():
        await sealer.seal_once(force_checkpoint=True)
        return await pool.fetchval("SELECT count(*) FROM audit_checkpoints WHERE seq >= "
                                   "(SELECT max(seq) FROM audit_events)") > 0

    await wait_for(covered, timeout=10, what="a checkpoint covering the letter")
    h = {"Authorization": f"Bearer {client.staff_tokens['auditor']}"}
    bundle = await (await client.get(f"/v1/audit/letters/{pk}/evidence.zip", headers=h)).read()
    z = zipfile.ZipFile(io.BytesIO(bundle))
    assert z.read("parts/att-2") == big
    rep = check_bundle(bundle, signer.certificate)
    assert rep.ok, rep.summary()
    assert any("parts/att-2 matches" in n for n in rep.notes)

    def rewritten(**replace: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as w:
            for n in z.namelist():
                if n in replace and replace[n] is None:
                    continue
                w.writestr(n, replace.get(n, z.read(n)))
        return out.getvalue()

    swapped = check_bundle(rewritten(**{"parts/att-2": os.urandom(len(big))}), signer.certificate)
    assert not swapped.ok and any(p.code == "edited" and "att-2" in p.message for p in swapped.problems)
    dropped = check_bundle(rewritten(**{"parts/att-2": None}), signer.certificate)
    assert not dropped.ok and any(p.code == "deleted" and "att-2" in p.message for p in dropped.problems)
