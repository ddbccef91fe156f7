"""Codat's webhooks: signature verification (Standard Webhooks / Svix) and the event envelope."""
