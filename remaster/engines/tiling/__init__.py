"""Tile strategies: exact SE-stage tiles with whole-frame means (`tiles.py`, states in `states.py`),
exact receptive-field tiles (`local.py`), cross-faded tiles for community models (`blended.py`)."""
