"""The package ComfyUI sees: node classes (thin) plus the core in ``runware/``.

Relative imports only: ComfyUI has a top-level module called ``nodes`` too.
"""

from .ledger_routes import register as _register_ledger_routes
from .registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .routes import register as _register_routes

_register_routes()  # a no-op outside ComfyUI
_register_ledger_routes()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
