"""Consent journey backend for banks on Codat: the Lambda layer package."""
