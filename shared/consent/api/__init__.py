"""The HTTP API plumbing: resolver, caller identity, parameters, problem+json and what each route documents."""
