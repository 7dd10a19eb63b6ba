"""The media layer: the one ffmpeg runner, pixel formats, picture files and synthetic pictures,
apart from the commands that use them."""
