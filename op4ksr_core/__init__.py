"""OP4KSR core: F16 VAE, RoPE base-frequency rescaling (RFR), L_AP, one-step upscale. Pure PyTorch."""
