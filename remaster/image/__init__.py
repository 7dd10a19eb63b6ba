"""`remaster image`: pictures and folders of pictures."""
