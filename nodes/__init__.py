"""ComfyUI adapters (thin ``io.ComfyNode`` classes). The only code in the pack that imports ComfyUI."""
