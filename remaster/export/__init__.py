"""`remaster export`: re-encode a finished file for a target (`targets.py`)."""
