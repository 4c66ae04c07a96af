from tests.audit.conftest import app_client, signer  # noqa: F401  (fixtures)
from tests.integration.conftest import clock, make_client  # noqa: F401  (fixtures)
