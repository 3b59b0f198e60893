"""The wiring of a run, a replay, a matrix, a soak and its workers."""
