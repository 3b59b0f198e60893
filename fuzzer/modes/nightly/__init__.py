"""The nightly soak: rounds across seeds and workers, a campaign shared in Redis."""
