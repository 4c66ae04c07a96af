"""``storage.transitions.transition`` (what a delivered outcome's Transition is made with) is the dataclass's
constructor: the same object for the same keywords, defaults included, frozen, and the same keywords refused."""

import dataclasses
import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.storage.transitions import Transition, transition

NOW = dt.datetime(2026, 12, 7, 11, 0, tzinfo=dt.UTC)
REQUIRED = {"delivery_id": uuid.UUID(int=3), "outcome": "delivered", "at": NOW, "message_pk": 7,
            "recipient": "1100000001", "actor": "gateway", "details": {"recipient": "1100000001"}}
OPTIONAL = {"worker": st.one_of(st.none(), st.text(max_size=5)), "attempt": st.one_of(st.none(), st.integers(0, 9)),
            "started_at": st.one_of(st.none(), st.just(NOW)), "reason": st.one_of(st.none(), st.text(max_size=5)),
            "permanent": st.booleans(), "due_at": st.one_of(st.none(), st.just(NOW)), "receipt": st.binary(max_size=8),
            "ack": st.one_of(st.none(), st.binary(max_size=8)), "reset_destination": st.booleans(),
            "breaker_threshold": st.integers(0, 5), "backoff_s": st.floats(0, 60), "extra": st.just({"k": 1})}


@given(st.fixed_dictionaries({}, optional=OPTIONAL))
def test_transition_is_the_constructor(optional):
    values = {**REQUIRED, **optional}
    made = transition(**values)
    built = Transition(**values)
    assert made == built
    assert {f.name: getattr(made, f.name) for f in dataclasses.fields(Transition)} == dataclasses.asdict(built) | {
        "receipt_message": None}
    if "extra" not in optional:  # the default: a dict of its own each, as default_factory makes
        assert made.extra == {} and made.extra is not transition(**values).extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, "outcome", "dead")  # noqa: B010 (frozen: the assignment is the point)


def test_the_same_keywords_are_refused():
    for missing in REQUIRED:
        with pytest.raises(TypeError):
            Transition(**{k: v for k, v in REQUIRED.items() if k != missing})
        with pytest.raises(TypeError):
            transition(**{k: v for k, v in REQUIRED.items() if k != missing})
    with pytest.raises(TypeError):
        Transition(**{**REQUIRED, "colour": "red"})
    with pytest.raises(TypeError):
        transition(**{**REQUIRED, "colour": "red"})
