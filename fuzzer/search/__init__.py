"""The search's seams: ``conjecture`` (the only module that uses Hypothesis's internals)
and ``interrupt`` (a stop requested by a signal, seen by the search loop)."""
