"""Console page: agency certificates expired or expiring within 60 days (ใบรับรองที่ใกล้หมดอายุ).

Read from the directory in force at the app's clock (:func:`gateway.core.certexpiry.expiring`): the
same figures as the gauge ``gateway_agency_certificates_expiring`` and the daily log line, with the
agencies named so an operator knows whom to call before their letters are refused.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.certexpiry import BUCKET_LABELS, BUCKETS, expiring
from gateway.http import params
from gateway.http.console.views import STAFF, Page, need


@aiohttp_jinja2.template("certificates.html")
async def certificates_page(request: web.Request) -> Page:
    """Operator, auditor, admin. Agency certificates expired or expiring within 60 days, soonest first;
    ``within`` (expired, 7d, 30d, 60d) narrows the list as the gauge's label does."""
    user = await need(request, *STAFF)
    within = params.optional(request.query, "within", "text")
    if within is not None and within not in BUCKETS:
        raise params.invalid(f"within must be one of {', '.join(BUCKETS)}", "within")
    directory = request.app[keys.DIRECTORY]
    report = expiring(directory, request.app[keys.CLOCK].now())
    rows = report.entries if within is None else report.within(within)
    return {"report": report, "rows": rows, "within": within, "buckets": BUCKETS, "labels": BUCKET_LABELS,
            "contacts": {e.agency: (directory.get(e.agency) or None) for e in rows}, "user": user}
