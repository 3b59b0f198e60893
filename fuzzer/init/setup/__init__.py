"""Setting the app up for a first try.

Seed candidates tried, wizards completed, identities made and proven.
"""
