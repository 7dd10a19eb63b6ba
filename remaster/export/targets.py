"""Export targets: TOML files that say how `remaster export` re-encodes a video for a site or an archive.

Built-in targets live in `presets/targets/`; a user's go in the `targets` folder of their presets
folder ($REMASTER_HOME/presets/targets or ~/.config/remaster/presets/targets) and win over a
built-in of the same name, as presets do. Every key but `container` and `[video] codec` may be
left out and takes the default of the dataclasses below.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from remaster.core.errors import UsageError
from remaster.core.resources import named_tomls, search_dirs
from remaster.media.pixels import pix_fmt_layout
from remaster.video.encode import CODECS, EncoderSettings
from remaster.video.streams import ANY_CODEC, AUDIO_ENCODERS, MP4_AUDIO

CONTAINERS = {"mp4": ".mp4", "mkv": ".mkv"}
_RATE = re.compile(r"\d+(\.\d+)?[kKM]?")
_SIZE = re.compile(r"(\d+)x(\d+)")


@dataclass(frozen=True)
class VideoTarget:
    encoder: EncoderSettings  # codec, crf, speed and pix_fmt, as in a preset's [encoder] table
    maxrate: str = ""  # a cap on the constant-quality rate ("12M"); "" = none
    bufsize: str = ""  # the window the cap is measured over; required with maxrate
    max_size: tuple[int, int] | None = None  # a box the display size must fit in; only ever downscales
    # True: resample anamorphic video so that pixels are square (sites and many players ignore the
    # sample aspect ratio); False: keep the storage size and the sample aspect ratio.
    square_pixels: bool = True


@dataclass(frozen=True)
class AudioTarget:
    copy: tuple[str, ...] = ()  # codecs copied as they are ("*": any); every other track is encoded
    encoder: str = "aac"
    bitrate: str = "192k"  # "" = the encoder's default (lossless flac takes none)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    path: Path
    container: str  # "mp4" or "mkv"
    video: VideoTarget
    audio: AudioTarget

    @property
    def suffix(self) -> str:
        return CONTAINERS[self.container]

    @property
    def muxer(self) -> str:
        """ffmpeg's name for the container."""
        return "mp4" if self.container == "mp4" else "matroska"


def _check_keys(table: object, allowed: set[str], where: str, path: Path) -> dict:
    if not isinstance(table, dict):
        raise UsageError(f"{path}: {where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{path}: unknown {where} keys {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    return table


def _string(table: dict, key: str, where: str, path: Path, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise UsageError(f"{path}: {where} {key} = {value!r}: want a string")
    return value


def _rate(table: dict, key: str, path: Path) -> str:
    value = _string(table, key, "[video]", path, "")
    if value and not _RATE.fullmatch(value):
        raise UsageError(f"{path}: [video] {key} = {value!r}: want bits per second such as 12M or 8000k")
    return value


def _video(table: object, path: Path) -> VideoTarget:
    encoder_keys = {"codec", "crf", "speed", "pix_fmt"}
    table = _check_keys(table, encoder_keys | {f.name for f in fields(VideoTarget)} - {"encoder"}, "[video]", path)
    codec = _string(table, "codec", "[video]", path, "")
    if codec not in CODECS:
        raise UsageError(f"{path}: [video] codec = {codec!r}: want one of {', '.join(CODECS)}")
    crf = table.get("crf", 18)
    if isinstance(crf, bool) or not isinstance(crf, (int, float)):
        raise UsageError(f"{path}: [video] crf = {crf!r}: want a number")
    speed = _string(table, "speed", "[video]", path, "")
    pix_fmt = _string(table, "pix_fmt", "[video]", path, "yuv420p")
    try:
        pix_fmt_layout(pix_fmt)
    except UsageError:
        raise UsageError(f"{path}: [video] pix_fmt = {pix_fmt!r}: want planar Y'CbCr such as yuv420p") from None
    maxrate, bufsize = _rate(table, "maxrate", path), _rate(table, "bufsize", path)
    if bool(maxrate) != bool(bufsize):
        raise UsageError(f"{path}: [video] maxrate and bufsize go together: give both or neither")
    max_size = None
    if "max_size" in table:
        match = _SIZE.fullmatch(_string(table, "max_size", "[video]", path, ""))
        if match is None or int(match[1]) < 2 or int(match[2]) < 2:
            raise UsageError(f"{path}: [video] max_size = {table['max_size']!r}: want WIDTHxHEIGHT such as 1920x1080")
        max_size = (int(match[1]), int(match[2]))
    square = table.get("square_pixels", True)
    if not isinstance(square, bool):
        raise UsageError(f"{path}: [video] square_pixels = {square!r}: want true or false")
    encoder = EncoderSettings(codec, float(crf), speed, pix_fmt).resolved()
    return VideoTarget(encoder, maxrate, bufsize, max_size, square)


def _audio(table: object, container: str, path: Path) -> AudioTarget:
    table = _check_keys(table, {"copy", "codec", "bitrate"}, "[audio]", path)
    copy = table.get("copy", [])
    if not isinstance(copy, list) or not all(isinstance(c, str) for c in copy):
        raise UsageError(f'{path}: [audio] copy = {copy!r}: want a list of codec names such as ["aac"]')
    encoder = _string(table, "codec", "[audio]", path, AudioTarget.encoder)
    if encoder not in AUDIO_ENCODERS:
        raise UsageError(f"{path}: [audio] codec = {encoder!r}: want one of {', '.join(AUDIO_ENCODERS)}")
    if container == "mp4":
        # Copying or encoding a codec MP4 cannot hold would fail at the very end of the export.
        wrong = [c for c in [*copy, AUDIO_ENCODERS[encoder]] if c != ANY_CODEC and c not in MP4_AUDIO]
        if ANY_CODEC in copy or wrong:
            bad = ", ".join(wrong) or ANY_CODEC
            raise UsageError(f"{path}: [audio] {bad}: MP4 holds only {', '.join(sorted(MP4_AUDIO))}")
    bitrate = _string(table, "bitrate", "[audio]", path, AudioTarget.bitrate)
    if bitrate and not _RATE.fullmatch(bitrate):
        raise UsageError(f"{path}: [audio] bitrate = {bitrate!r}: want bits per second such as 192k")
    return AudioTarget(tuple(copy), encoder, bitrate)


def _read(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a valid target ({type(exc).__name__}: {exc})") from None
    data = _check_keys(data, {"description", "container", "video", "audio"}, "top-level", path)
    container = data.get("container")
    if container not in CONTAINERS:
        raise UsageError(f"{path}: container = {container!r}: want one of {', '.join(CONTAINERS)}")
    if "video" not in data:
        raise UsageError(f"{path}: a target needs a [video] table with at least codec")
    return Target(
        name=path.stem,
        description=str(data.get("description", "")),
        path=path,
        container=container,
        video=_video(data["video"], path),
        audio=_audio(data.get("audio", {}), container, path),
    )


def target_dirs() -> list[Path]:
    """The user's folder first, so that a user's target of the same name wins."""
    return [folder / "targets" for folder in search_dirs("presets")]


def load_targets() -> dict[str, Target]:
    return {name: _read(path) for name, path in named_tomls(target_dirs()).items()}


def get_target(name: str) -> Target:
    targets = load_targets()
    if name not in targets:
        raise UsageError(f"unknown target {name!r}; valid targets: {', '.join(targets) or 'none'}")
    return targets[name]
