"""`remaster compare`: one frame by bicubic and by each model, side by side."""
