"""Storage backends behind one interface (see base.Store)."""

from gate_proxy.store.base import Conflict, DuplicateKey, EventDraft, Store, StoreError

__all__ = ["Conflict", "DuplicateKey", "EventDraft", "Store", "StoreError"]
