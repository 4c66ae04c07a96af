"""Certificate expiry buckets, the daily log line and the gauge, with a fake clock; entries read from PEM."""

import datetime as dt

import pytest
import structlog
from cryptography.hazmat.primitives import hashes
from structlog.testing import capture_logs

from gateway.core.certexpiry import CertificateEntryError, bucket_of, certificate_entry, expiring
from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.core.metrics import Metrics
from gateway.exchange.certificates import CertificateWatch
from pki.certfactory import CertFactory

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
A, B, C, D = "0100000000", "1550100000", "1550200000", "1500000000"


def fp(n: int) -> str:
    return f"{n:064x}"


def cert(n: int, days: float, **kw) -> dict:
    out = {"sha256": fp(n), "not_before": (NOW - dt.timedelta(days=300)).isoformat(),
           "not_after": (NOW + dt.timedelta(days=days)).isoformat()}
    out.update(kw)
    return out


def directory(certs: dict[str, list[dict]], **extra) -> Directory:
    names = {A: "สำนักนายกรัฐมนตรี", B: "ศาลากลางจังหวัดเชียงใหม่", C: "ศาลากลางจังหวัดขอนแก่น", D: "กระทรวงมหาดไทย"}
    return Directory.from_dict({"agencies": [
        {"code": code, "name_th": th, "name_en": f"Agency {code}", "parent": None if code in (A, D) else D,
         "certificates": certs.get(code, []), **extra.get(code, {})} for code, th in names.items()]})


def gauge(metrics: Metrics) -> dict[str, float]:
    return {s.labels["within"]: s.value for m in metrics.registry.collect()
            if m.name == "gateway_agency_certificates_expiring" for s in m.samples}


def test_buckets_are_tightest_first_and_counts_cumulative():
    d = directory({A: [cert(1, 5), cert(2, 400)], B: [cert(3, 29.5), cert(4, -3)], C: [cert(5, 59)],
                   D: [cert(6, 61)]})
    r = expiring(d, NOW)
    assert [(e.agency, e.sha256, e.bucket, e.days_left) for e in r.entries] == [
        (B, fp(4), "expired", -3), (A, fp(1), "7d", 5), (B, fp(3), "30d", 29), (C, fp(5), "60d", 59)]
    assert dict(r.counts) == {"expired": 1, "7d": 1, "30d": 2, "60d": 3}
    assert r.agencies("expired") == [B] and r.agencies() == [B, A, C]
    assert r.entries[0].name_th == "ศาลากลางจังหวัดเชียงใหม่"


def test_bucket_edges():
    assert bucket_of(NOW, NOW) == "expired"
    assert bucket_of(NOW + dt.timedelta(seconds=1), NOW) == "7d"
    assert bucket_of(NOW + dt.timedelta(days=7), NOW) == "7d"
    assert bucket_of(NOW + dt.timedelta(days=7, seconds=1), NOW) == "30d"
    assert bucket_of(NOW + dt.timedelta(days=60), NOW) == "60d"
    assert bucket_of(NOW + dt.timedelta(days=60, seconds=1), NOW) is None


def test_retired_undated_and_inactive_certificates_are_not_reported():
    d = directory({A: [cert(1, 3, retired_at=NOW.isoformat()), {"sha256": fp(2)}],
                   B: [cert(3, 3)], C: [cert(4, -1)]}, **{C: {"active": False}})
    r = expiring(d, NOW)
    assert [e.sha256 for e in r.entries] == [fp(3)]


def test_a_rotated_agency_is_marked_replaced_only_when_the_successor_covers_the_usage():
    d = directory({A: [cert(1, 5), cert(2, 700)],
                   B: [cert(3, 5, usage=["signing", "tls"]), cert(4, 700, usage=["signing"])],
                   C: [cert(5, 5), cert(6, 20)]})
    replaced = {e.sha256: e.replaced for e in expiring(d, NOW).entries}
    assert replaced == {fp(1): True, fp(3): False, fp(5): False, fp(6): False}


def test_moving_the_clock_moves_certificates_through_the_buckets():
    clock = FakeClock(NOW)
    d = directory({A: [cert(1, 45)]})
    seen = []
    for _ in range(4):
        r = expiring(d, clock.now())
        seen.append(r.entries[0].bucket if r.entries else None)
        clock.advance(20 * 86400)
    assert seen == ["60d", "30d", "7d", "expired"]


def test_the_watch_sets_the_gauge_and_logs_once_a_day():
    clock, metrics = FakeClock(NOW), Metrics()
    d = directory({A: [cert(1, 40)], B: [cert(2, 10)]})
    with capture_logs() as logs:
        watch = CertificateWatch(d, clock, metrics, logger=structlog.get_logger("certs-test"))
        watch.check()
        assert gauge(metrics) == {"expired": 0, "7d": 0, "30d": 1, "60d": 2}
        clock.advance(3600)
        watch.check()  # within the day: the gauge, no second line
        clock.advance(4 * 86400)  # B is now 5 days 23 h from expiry
        watch.check()
        assert gauge(metrics) == {"expired": 0, "7d": 1, "30d": 1, "60d": 2}
        clock.advance(6 * 86400)  # B expired, A within 30 days
        watch.check()
    lines = [e for e in logs if e["event"] == "certificates expiring"]
    assert [(e["log_level"], e["expired"], e["within_7d"], e["within_30d"], e["within_60d"]) for e in lines] == [
        ("info", 0, 0, 1, 2), ("warning", 0, 1, 1, 2), ("warning", 1, 0, 1, 1)]
    assert [s["agency"] for s in lines[1]["soonest"]] == [B, A]
    assert lines[1]["soonest"][0]["days_left"] == 5
    assert lines[2]["expired_agencies"] == [B]
    assert gauge(metrics) == {"expired": 1, "7d": 0, "30d": 1, "60d": 1}


def test_the_gauge_follows_a_directory_replace_at_once():
    clock, metrics = FakeClock(NOW), Metrics()
    d = directory({A: [cert(1, -2)]})
    watch = CertificateWatch(d, clock, metrics, logger=structlog.get_logger("certs-test"))
    watch.follow()
    watch.check()
    assert gauge(metrics)["expired"] == 1
    d.replace(directory({A: [cert(1, -2, retired_at=NOW.isoformat()), cert(2, 700)]}))
    assert gauge(metrics)["expired"] == 0


@pytest.fixture(scope="module")
def factory():
    return CertFactory.new_root("Test Root", now=NOW).intermediate("Test Issuing CA")


def test_certificate_entry_reads_fingerprint_validity_and_subject(factory):
    issued = factory.agency_signing(A, "สำนักนายกรัฐมนตรี", not_before=NOW - dt.timedelta(days=1),
                                    not_after=NOW + dt.timedelta(days=30))
    pem = issued.cert_pem + factory.ca.cert_pem  # a chain: the first certificate is the one registered
    entry = certificate_entry(pem, "signing", agency=A)
    assert entry.sha256 == issued.cert.fingerprint(hashes.SHA256()).hex()
    assert (entry.usage, entry.not_before, entry.not_after) == (("signing",), NOW - dt.timedelta(days=1),
                                                                NOW + dt.timedelta(days=30))
    assert "GOVTH-" + A in entry.subject
    assert certificate_entry(pem).usage == ("signing", "tls")
    # it round-trips through the directory file form
    d = Directory.from_dict({"agencies": [{"code": A, "name_th": "ส", "name_en": "O",
                                           "certificates": [entry.to_dict()]}]})
    assert d[A].certificates == (entry,) and entry.sha256 in d[A].pinned


@pytest.mark.parametrize(("pem", "usage", "agency", "field", "says"), [
    (b"not a certificate", "signing", None, "certificate", "not a PEM certificate"),
    (b"", "signing", None, "certificate", "not a PEM certificate"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "tls", None, "certificate",
     "not a PEM certificate"),
    (None, "email", None, "usage", "usage must be"),
    (None, (), None, "usage", "usage must be"),
    (None, ("tls", "tls"), None, "usage", "usage must be"),
    (None, "signing", B, "certificate", f"names agency {A}, not {B}"),
])
def test_certificate_entry_refuses_with_a_code_naming_the_field(factory, pem, usage, agency, field, says):
    pem = pem if pem is not None else factory.agency_signing(A, "สำนักนายกรัฐมนตรี").cert_pem
    with pytest.raises(CertificateEntryError) as err:
        certificate_entry(pem, usage, agency=agency)
    assert (err.value.code, err.value.field) == ("request.invalid", field)
    assert says in err.value.message
