"""What a user writes: the target contract, loading a reference, app helpers, domains."""
