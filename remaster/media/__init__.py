"""remaster's media layer: the one ffmpeg runner (`remaster.media.ffmpeg`)."""
