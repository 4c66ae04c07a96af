import pytest

from gateway.audit.sealer import ChainSealer, SealerSettings
from gateway.clock import FakeClock
from tests.audit.keys import TestSigner


@pytest.fixture(scope="session")
def signer():
    return TestSigner()


@pytest.fixture
def sealer(pool, signer):
    return ChainSealer(pool, clock=FakeClock(), signer=signer,
                       settings=SealerSettings(checkpoint_events=5, checkpoint_seconds=3600))
