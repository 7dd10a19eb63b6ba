"""The media layer: what remaster does with streams and pixels, apart from the commands that use it."""
