"""An execution to a verdict: serial references, normalisation, masks."""
