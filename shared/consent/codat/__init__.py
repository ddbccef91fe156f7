"""Codat's Platform API as this product uses it: a typed client (`client`), its models and its errors.

Import from the submodules: `errors` and `models` do not pull in the HTTP client."""
