"""One folder per architecture: its network (`network.py`) and its detection, building and
descriptor (`detection.py`). `registry.py` lists them; adding an architecture is one folder and one
line there."""
