import pytest

from gateway.core.errors import ConfigError
from gateway.core.settings import Settings


def test_reads_nested_settings_from_env():
    s = Settings.from_env({"GATEWAY_PORT": "9000", "GATEWAY_RETRY_MAX_ATTEMPTS": "3",
                           "GATEWAY_DISPATCH_ENABLED": "false"})
    assert s.port == 9000 and s.retry.max_attempts == 3 and s.dispatch.enabled is False


def test_bad_value_names_the_variable():
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"GATEWAY_PORT": "eighty"})
    assert e.value.field == "GATEWAY_PORT"


def test_ecms_signature_policy_follows_the_profile_unless_set():
    dev = Settings.from_env({})
    assert dev.ecms_accept_unsigned is True and dev.ecms_allow_legacy_sha1 is False
    assert dev.ecms_require_trusted_signature is False
    prod = Settings.from_env({"GATEWAY_PROFILE": "production", "GATEWAY_ALLOW_SHA1": "true"})
    assert prod.ecms_accept_unsigned is False and prod.ecms_allow_legacy_sha1 is True
    explicit = Settings.from_env({"GATEWAY_PROFILE": "production", "GATEWAY_ECMS_ACCEPT_UNSIGNED": "true",
                                  "GATEWAY_ALLOW_SHA1": "true", "GATEWAY_ECMS_ALLOW_LEGACY_SHA1": "false",
                                  "GATEWAY_ECMS_REQUIRE_TRUSTED_SIGNATURE": "yes"})
    assert explicit.ecms_accept_unsigned is True and explicit.ecms_allow_legacy_sha1 is False
    assert explicit.ecms_require_trusted_signature is True


def test_a_lease_shorter_than_a_delivery_request_is_refused():

    with pytest.raises(ConfigError) as e:
        Settings.from_env({"GATEWAY_DISPATCH_LEASE_S": "20", "GATEWAY_DISPATCH_REQUEST_TIMEOUT_S": "30"})
    assert e.value.field == "GATEWAY_DISPATCH_LEASE_S"
    assert Settings.from_env({"GATEWAY_DISPATCH_LEASE_S": "31"}).dispatch.lease_s == 31


def test_the_server_runs_on_uvloop_unless_asyncio_is_chosen():
    assert Settings.from_env({}).event_loop == "uvloop"
    assert Settings.from_env({"GATEWAY_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"GATEWAY_EVENT_LOOP": "tokio"})
    assert e.value.field == "GATEWAY_EVENT_LOOP"
