"""A concurrency fuzzer for Flask + SQLAlchemy applications.

The public API, nothing else::

    from fuzzer import Target, Endpoint, checkpoint, fuzz, replay, assert_serializable

``fuzz`` is for a test suite (it fails with the report when it finds a race);
``assert_serializable`` is what a generated regression test calls.
"""

__version__ = "0.1.0"

from .api import assert_serializable, fuzz, replay
from .gates import checkpoint
from .target import Endpoint, Identity, Target

__all__ = [
    "Endpoint",
    "Identity",
    "Target",
    "__version__",
    "assert_serializable",
    "checkpoint",
    "fuzz",
    "replay",
]
