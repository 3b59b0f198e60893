"""Example applications with known concurrency bugs, each beside its fixed twin.

Every target declares the findings it must produce (``expected_findings``); the
quality tests hold the fuzzer to them. Load one by reference, e.g.
``fuzzer run targets.profile:buggy``.
"""
