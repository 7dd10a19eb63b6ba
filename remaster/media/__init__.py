"""The media layer: what remaster does with ffmpeg, streams and pixels, apart from the commands that use it."""
