"""headscope: find, score and reuse the attention heads that retrieve in long-context LMs.

Importing headscope changes nothing global (no attention functions are registered, no RNG
is seeded); heavy libraries load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "open_capture"]


def __getattr__(name: str) -> Any:
    # Lazy re-exports keep `import headscope` (and `headscope --help`) fast.
    if name == "load_model":
        from .models import load_model

        return load_model
    if name == "open_capture":
        from .store import open_capture

        return open_capture
    raise AttributeError(f"module 'headscope' has no attribute {name!r}")
