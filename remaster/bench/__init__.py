"""`remaster bench`: model-only speed and fidelity, per precision and preset."""
