"""Reports of a run: JSON (versioned, replayable), terminal text, HTML, JUnit XML.

Each module here renders the same data (``Finding``, the run's summary) one way;
none of them prints — ``fuzzer.report.reporting`` does.
"""
