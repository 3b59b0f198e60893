"""A concurrency fuzzer for Flask + SQLAlchemy applications.

The public API, nothing else::

    from fuzzer import Target, Endpoint, checkpoint, fuzz, replay
"""

__version__ = "0.1.0"

from .api import fuzz, replay
from .gates import checkpoint
from .target import Endpoint, Identity, Target

__all__ = ["Endpoint", "Identity", "Target", "__version__", "checkpoint", "fuzz", "replay"]
