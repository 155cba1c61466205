"""The crisis safety net: a layered, multilingual detector of danger in a user's message.

See `detector` for the layers and `loader` for how a pack's safety section
becomes a net. The chat and the pipeline call only what is exported here.
"""

from __future__ import annotations

from .detector import SafetyNet
from .loader import SafetyConfigError, load_safety_net, preload_safety_net, safety_problems
from .model_signal import model_signals
from .verdict import SafetySignal, SafetyVerdict

__all__ = [
    "SafetyConfigError",
    "SafetyNet",
    "SafetySignal",
    "SafetyVerdict",
    "load_safety_net",
    "model_signals",
    "preload_safety_net",
    "safety_problems",
]
