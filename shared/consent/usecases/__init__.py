"""The consent journey's use cases: one function per thing a customer or Codat can make happen."""
