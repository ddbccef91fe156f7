"""The HTTP API plumbing: resolver factory, caller identity, problem+json errors, request/response models."""
