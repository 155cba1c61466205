"""Durable state: SQLModel tables and the store, the single source of truth."""
