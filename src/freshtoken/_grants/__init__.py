"""Grants, client authentication, and the exchange with the token endpoint."""
