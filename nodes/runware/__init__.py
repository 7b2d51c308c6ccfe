"""The Runware core: HTTP client, errors, spec validation, media. No ComfyUI imports."""
