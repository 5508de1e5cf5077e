"""Wake-ups of background work (core.py; listener.py for PostgreSQL's
LISTEN/NOTIFY). Apps register their targets at ready() and call wake()."""

from maestra.wake.core import DELIVERY, ENGINE, register, wake

__all__ = ["DELIVERY", "ENGINE", "register", "wake"]
