"""The database's address in CLI error lines: never the password, and every host of a replicated pair
(a multi-host URL made ``urlsplit(...).port`` raise, so `gateway audit verify --database` failed on a pair)."""

from gateway.cli.common import _where


def test_where_names_every_host_and_never_the_password():
    assert _where("postgresql://gw:s3cret@127.0.0.1:54171,127.0.0.1:33093/gateway") == \
        "127.0.0.1:54171,127.0.0.1:33093/gateway"
    assert _where("postgresql://gw:s3cret@db.example:5433/gateway") == "db.example:5433/gateway"
    assert "s3cret" not in _where("postgresql://gw:s3cret@/gateway?host=/run/pg")
    assert _where("host=/run/pg dbname=gateway") == "the configured database"
