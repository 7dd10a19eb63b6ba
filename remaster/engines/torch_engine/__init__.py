"""The torch engine: each architecture's own PyTorch module, eager or compiled."""
