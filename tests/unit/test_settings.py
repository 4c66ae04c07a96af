import pytest

from gateway.errors import ConfigError
from gateway.settings import Settings


def test_reads_nested_settings_from_env():
    s = Settings.from_env({"GATEWAY_PORT": "9000", "GATEWAY_RETRY_MAX_ATTEMPTS": "3",
                           "GATEWAY_DISPATCH_ENABLED": "false"})
    assert s.port == 9000 and s.retry.max_attempts == 3 and s.dispatch.enabled is False


def test_bad_value_names_the_variable():
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"GATEWAY_PORT": "eighty"})
    assert e.value.field == "GATEWAY_PORT"
