"""A concurrency fuzzer for Flask + SQLAlchemy applications.

The public API, nothing else::

    from fuzzer import Target, Endpoint, Identity, Login, checkpoint, fuzz, replay

and, for specs that drive an existing app: ``paths`` and ``values_of`` (strategies over
the rows present after setup), ``pinned_config``, ``flask_command`` and
``flask_login_session`` (build, seed and log into a Flask app with its own code).
"""

__version__ = "0.1.0"

from .api import fuzz, replay
from .apps import flask_command, flask_login_session, pinned_config
from .domains import paths, values_of
from .gates import checkpoint
from .target import Endpoint, Identity, Login, Target

__all__ = [
    "Endpoint",
    "Identity",
    "Login",
    "Target",
    "__version__",
    "checkpoint",
    "flask_command",
    "flask_login_session",
    "fuzz",
    "paths",
    "pinned_config",
    "replay",
    "values_of",
]
