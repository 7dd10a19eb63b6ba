"""Mux: the new video with every other stream of the original, copied bit-exact, by ffmpeg.

The command is built with ffmpeg-python and run by remaster.media.ffmpeg (the ffmpeg binary of
imageio-ffmpeg, no system ffmpeg needed). `-copyts` keeps the original timestamps, so audio and subtitle start
offsets stay as they were (without it ffmpeg shifted the original streams by the AAC priming;
DESIGN.md section 6). Cover images, which FFmpeg's demuxers show as one-frame video streams,
are written back as attachments rather than mapped as video.
"""

from __future__ import annotations

from pathlib import Path

import av
import ffmpeg

from remaster.media.ffmpeg import run_ffmpeg
from remaster.video.probe import MediaInfo, StreamInfo
from remaster.video.streams import MUX_POLICY, StreamPlan, plan_streams

# Per-stream tags that describe the old encode, not the new one (mkvmerge's statistics tags).
STALE_VIDEO_TAGS = {"duration", "bps", "number_of_frames", "number_of_bytes", "encoder", "handler_name", "vendor_id"}
# The new video track's title names its codec, like the titles release groups give tracks.
CODEC_TITLES = {"hevc": "HEVC", "h264": "H.264", "av1": "AV1"}
# A track's title: Matroska's track name reads as "title", MP4's (its udta name box) as "name".
TITLE_TAGS = {"title", "name"}
COVER_MIMETYPES = {"mjpeg": ("image/jpeg", "cover.jpg"), "png": ("image/png", "cover.png")}


def plan_mux(media: MediaInfo, output_format: str) -> StreamPlan:
    """Which original streams go into the output, and how; `output_format` is matroska or mp4.
    The video job keeps every stream the container can hold (remaster/video/streams.py)."""
    return plan_streams(media, output_format, MUX_POLICY)


def cover_attachment_args(media: MediaInfo, covers: list[StreamInfo], folder: Path) -> list[str]:
    """Write each cover image to a file in `folder` and return the ffmpeg options that attach it
    again, with its MIME type and file name, after the original's own attachments.

    The picture is not in the packets PyAV demuxes (FFmpeg keeps it in AVStream.attached_pic),
    but the ffmpeg tool hands it out as a one-frame stream, copied as-is.
    """
    args: list[str] = []
    first = sum(1 for s in media.streams if s.kind == "attachment")
    with av.open(str(media.path)) as container:
        for i, info in enumerate(covers):
            metadata = container.streams[info.index].metadata
            mimetype, default_name = COVER_MIMETYPES.get(info.codec, ("application/octet-stream", "cover.bin"))
            mimetype = metadata.get("mimetype", mimetype)
            filename = metadata.get("filename", default_name)
            path = folder / f"cover-{info.index}{Path(filename).suffix}"
            cover = ffmpeg.input(str(media.path))[str(info.index)].output(str(path), c="copy", f="data")
            run_ffmpeg(cover, media.path, "muxing")
            n = first + i
            args += ["-attach", str(path), f"-metadata:s:t:{n}", f"mimetype={mimetype}"]
            args += [f"-metadata:s:t:{n}", f"filename={filename}"]
    return args


def _tag_name(key: str) -> str:
    # FFmpeg reads a Matroska tag with a language other than und as NAME-lang: "BPS-eng".
    return key.split("-", 1)[0].lower()


def is_stale_video_tag(key: str) -> bool:
    """A tag of the old video track that describes its encode: the encoder, or mkvmerge's statistics
    (BPS, DURATION, NUMBER_OF_FRAMES, NUMBER_OF_BYTES and the _STATISTICS_* tags that list them)."""
    name = _tag_name(key)
    return name in STALE_VIDEO_TAGS or name.startswith("_statistics_")


def is_title_tag(key: str) -> bool:
    """A tag that titles the track (describing an encode it may no longer have)."""
    return _tag_name(key) in TITLE_TAGS


def describe_video(codec: str, width: int, height: int, bits: int, made_with: str) -> str:
    """A video track's title from its facts (`codec` as FFmpeg names it: hevc, h264, av1):
    "HEVC 1440x960 10-bit, remaster 2x-conservative"."""
    return f"{CODEC_TITLES.get(codec, codec)} {width}x{height} {bits}-bit, {made_with}"


def video_title(video_file: Path, made_with: str) -> str:
    """What the new video track is, read from the stream itself: "HEVC 1440x960 10-bit, remaster 2x-conservative"."""
    with av.open(str(video_file)) as container:
        ctx = container.streams.video[0].codec_context
        return describe_video(ctx.name, ctx.width, ctx.height, ctx.format.components[0].bits, made_with)


def _video_tags(media: MediaInfo, title: str) -> tuple[dict[str, str], str]:
    """The original video track's tags for the new one, less the stale ones; its title, which
    describes the old encode ("H.264 480p 8-bit"), becomes `title`. No title stays no title."""
    with av.open(str(media.path)) as container:
        stream = container.streams[media.video.index]
        kept = {k: v for k, v in stream.metadata.items() if not is_stale_video_tag(k)}
        tags = {k: v for k, v in kept.items() if not is_title_tag(k)}
        if len(tags) < len(kept):
            tags["title"] = title
        flags = [name for name, flag in av.stream.Disposition.__members__.items() if stream.disposition & flag]
    return tags, "+".join(flags) or "0"


def _cut(media: MediaInfo, indices: list[str], time_range: tuple[float, float], work: Path):
    """Copy the given streams of the original, from time_range[0] to time_range[1] on its clock."""
    path = work / "cut.mkv"
    original = ffmpeg.input(str(media.path))
    # Matroska cannot hold mov_text; the main mux converts it again as the output needs.
    subtitle_codec = {"c:s": "srt"} if any(media.streams[int(i)].codec == "mov_text" for i in indices) else {}
    # Output -ss drops the packets before the cut but restarts the clock at zero even with
    # -copyts (ffmpeg 9); -output_ts_offset puts it back on the original's clock.
    start = f"{time_range[0]:.6f}"
    window = {"ss": start, "to": f"{time_range[1]:.6f}", "output_ts_offset": start}
    cut = ffmpeg.output(*[original[i] for i in indices], str(path), c="copy", **subtitle_codec, **window)
    run_ffmpeg(cut, media.path, "muxing", global_args=["-copyts"])
    return ffmpeg.input(str(path))


def _ffmetadata_escape(text: str) -> str:
    # ffmetadata's escaping: a backslash before =, ;, #, backslash and newline.
    return "".join("\\" + c if c in "=;#\\\n" else c for c in text)


def window_metadata(media: MediaInfo, time_range: tuple[float, float], path: Path) -> Path:
    """Write an ffmetadata file with the original's global tags and its chapters within
    `time_range`, clipped to it and on the original's clock, where the cut puts the streams.

    Taken from the cut's own file instead, the chapters were off by the cut's start: its output
    -ss moves chapters to zero, and -output_ts_offset, which puts the packets back, leaves them.
    """
    start, end = time_range
    lines = [";FFMETADATA1"]
    with av.open(str(media.path)) as container:
        lines += [f"{_ffmetadata_escape(k)}={_ffmetadata_escape(v)}" for k, v in container.metadata.items()]
        for chapter in container.chapters():
            base = chapter["time_base"]
            first, last = max(float(chapter["start"] * base), start), min(float(chapter["end"] * base), end)
            if last <= first:
                continue  # outside the window
            lines += ["[CHAPTER]", "TIMEBASE=1/1000000", f"START={round(first * 1e6)}", f"END={round(last * 1e6)}"]
            lines += [f"{_ffmetadata_escape(k)}={_ffmetadata_escape(v)}" for k, v in chapter["metadata"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mux(
    video_file: Path,
    media: MediaInfo,
    output: Path,
    output_format: str,
    work: Path,
    time_range: tuple[float, float] | None = None,
    made_with: str = "remaster",
) -> list[str]:
    """Write `output` from the new video and the original's other streams; returns the notes.
    `made_with` ends the new video track's title ("remaster 2x-conservative")."""
    plan = plan_mux(media, output_format)
    new_video = ffmpeg.input(str(video_file))
    original = ffmpeg.input(str(media.path))
    sources = {index: original[index] for index in plan.maps}
    options = dict(plan.options)
    if time_range is not None:
        # Only part of the video was remastered: cut the timed streams to match first. ffmpeg
        # does not drop copied packets before an input -ss, and an output -ss would drop the new
        # video's B-frames (their dts come before the cut), so the cut is a pass of its own.
        timed = [i for i in plan.maps if media.streams[int(i)].kind in ("audio", "subtitle")]
        if timed:
            cut = _cut(media, timed, time_range, work)
            sources.update({index: cut[str(n)] for n, index in enumerate(timed)})
            if output_format == "mp4":
                # The cut carries mov_text as srt (its Matroska cannot hold mov_text); MP4 takes it back.
                for d in plan.decisions:
                    if d.mapped and d.stream.codec == "mov_text":
                        options[f"c:{d.output}"] = "mov_text"
    streams = [new_video["v:0"]] + [sources[index] for index in plan.maps]
    # ffmpeg-python lists only the inputs that streams come from; chapters and tags still come from
    # the original, which must then be input 1 all the same: with no stream of its own to keep, its
    # first stream is mapped (`-map 1:0`) and unmapped again (`-map -1:0`, after the streams' maps).
    unmapped = {} if plan.maps else {"map": "-1:0"}
    streams += [] if plan.maps else [original["0"]]
    command = ffmpeg.output(
        *streams, str(output), c="copy", map_chapters=1, map_metadata=1, f=output_format, **options, **unmapped
    )
    # Repeated output options (a -metadata:s:v:0 per tag, an -attach per cover), which
    # ffmpeg-python's keyword arguments cannot write.
    extra: list[str] = []
    tags, disposition = _video_tags(media, video_title(video_file, made_with))
    for key, value in tags.items():
        extra += ["-metadata:s:v:0", f"{key}={value}"]
    extra += ["-disposition:v:0", disposition]
    extra += cover_attachment_args(media, plan.covers, work)
    if output_format == "mp4":
        extra += ["-movflags", "+faststart"]
    # A cut: the chapters and global tags from a metadata file clipped to the window, on the source clock.
    metadata = None if time_range is None else window_metadata(media, time_range, work / "window.txt")
    run_ffmpeg(command, media.path, "muxing", global_args=["-copyts"], output_args=extra, metadata_input=metadata)
    return plan.notes
