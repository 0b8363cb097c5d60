"""Shared helpers of both cores: colour, weights, degradations, metrics, downloads. Pure PyTorch."""
