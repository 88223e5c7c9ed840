"""Durable shared state: the call journal, incidents, callbacks and the statistics read from them."""

from ivr.journal.callbacks import Callback, CallbackStore, LeaseLost
from ivr.journal.db import Database, Dialect, StateError, Target
from ivr.journal.incidents import Incident, IncidentStore
from ivr.journal.journal import (
    DURABLE_KINDS,
    HOLD_MAX,
    HOLD_SECONDS,
    OUTCOMES,
    CallEvent,
    CallRecord,
    Journal,
)
from ivr.journal.state import State, open_state

__all__ = [
    "DURABLE_KINDS",
    "HOLD_MAX",
    "HOLD_SECONDS",
    "OUTCOMES",
    "CallEvent",
    "CallRecord",
    "Callback",
    "CallbackStore",
    "Database",
    "Dialect",
    "Incident",
    "IncidentStore",
    "Journal",
    "LeaseLost",
    "State",
    "StateError",
    "Target",
    "open_state",
]
