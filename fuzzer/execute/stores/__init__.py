"""Stores besides the database: Flask-Caching and Redis, owned or foreign, traced."""
