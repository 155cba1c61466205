"""Actor workers, the supervisor, LLM backends and the pure domain logic they use."""
