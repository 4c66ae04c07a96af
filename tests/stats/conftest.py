from tests.integration.conftest import clock, make_client  # noqa: F401  (fixtures)
