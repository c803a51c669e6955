"""Shared code of the Goal Conversions API functions: models, repository, auth and HTTP."""
