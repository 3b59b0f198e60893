"""A concurrency fuzzer for Flask + SQLAlchemy applications.

The public API, nothing else::

    from fuzzer import Target, Endpoint, Identity, Login, checkpoint, fuzz, replay
    from fuzzer import assert_serializable

``fuzz`` is for a test suite (it fails with the report when it finds a race);
``assert_serializable`` is what a generated regression test calls. For specs that drive
an existing app: ``paths`` and ``values_of`` (strategies over the rows present after
setup), ``pinned_config``, ``flask_command`` and ``flask_login_session`` (build, seed and
log into a Flask app with its own code).
"""

from fuzzer.api import assert_serializable, fuzz, replay
from fuzzer.execute.gates import checkpoint
from fuzzer.target.apps import basic_auth, flask_command, flask_login_session, pinned_config
from fuzzer.target.contract import Endpoint, Identity, Login, Target
from fuzzer.target.domains import paths, values_of
from fuzzer.target.rows import fill_tables
from fuzzer.version import __version__

__all__ = [
    "Endpoint",
    "Identity",
    "Login",
    "Target",
    "__version__",
    "assert_serializable",
    "basic_auth",
    "checkpoint",
    "fill_tables",
    "flask_command",
    "flask_login_session",
    "fuzz",
    "paths",
    "pinned_config",
    "replay",
    "values_of",
]
