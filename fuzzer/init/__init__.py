"""An app to a starting spec: what ``fuzzer init`` does."""
