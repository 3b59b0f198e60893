"""The fuzzer's version: one place, read by pyproject.toml and by the reports."""

__version__ = "0.1.0"

#: Sent by every request of the fuzzer's client, logins included (Flask-Login's session
#: protection hashes it with the client address).
USER_AGENT = "flask-race-fuzzer"
