"""Integrations with other libraries' clients (optional extras)."""
