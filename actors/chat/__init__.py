"""The offline chat: the engine that builds prompts with a stable prefix and streams replies.

The crisis net it applies to every turn lives in `actors.safety`, shared with the pipeline.
"""
