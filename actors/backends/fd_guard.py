"""Keep llama.cpp loads from taking stdout and stderr away from the process.

While llama-cpp-python creates a model or a context with ``verbose=False``
it points the *process's* stdout and stderr (file descriptors 1 and 2) at
/dev/null (``llama_cpp._utils.suppress_stdout_stderr``). Textual draws on
stderr, so every frame drawn meanwhile is lost. Worse, the redirect is
process-wide and not thread-safe: two contexts loading at once in two worker
threads (the model pool grows slots on demand) can restore in the wrong
order and leave stdout or stderr on /dev/null for good — a frozen app, or a
headless `coach run` whose progress silently stops printing.

The redirect is not needed for quiet: llama.cpp's C log already goes through
llama-cpp-python's log callback to Python's ``sys.stderr`` (which Textual
captures) at the level `actors.backends.model_cache` sets. So the redirect
is turned into a no-op for the whole process when the model cache is imported.
"""

from __future__ import annotations


class _KeepOutput:
    """A stand-in for ``suppress_stdout_stderr`` that leaves the file descriptors alone."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __enter__(self) -> _KeepOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def keep_terminal_output() -> None:
    """Stop llama-cpp-python from redirecting fds 1 and 2 (call once, before the app starts drawing)."""
    import importlib

    for name in ("llama_cpp.llama", "llama_cpp._internals", "llama_cpp.llama_chat_format"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "suppress_stdout_stderr"):
            module.suppress_stdout_stderr = _KeepOutput
