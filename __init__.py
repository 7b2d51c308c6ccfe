"""ComfyUI entry point: re-exports the node table and the web directory, nothing else."""

WEB_DIRECTORY = "./web"

# ComfyUI imports this folder as a package. Tools that import this file bare (pytest does,
# when the checkout's folder name is not a Python identifier, e.g. the README's
# ComfyUI-Runware-Ovi-Sync3) get no package to import from: nothing to export then.
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
