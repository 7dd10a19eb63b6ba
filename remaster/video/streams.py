"""One stream-mapping plan for every command that writes a container: the video job's mux and `export`.

For each stream of the source but the main video, one decision (keep, convert, drop, attach as a
cover, burned in), computed by `plan_streams` from the probed streams, the output container
(ffmpeg's muxer name: matroska or mp4) and a `StreamPolicy` (what the command allows beyond the
container: which audio codecs it copies and what it encodes the others to). The plan gives the
ffmpeg per-stream options, after a global `-c copy`, and the notes that tell the user what was
dropped or converted. Running ffmpeg is the commands' business; nothing here touches a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from remaster.core.wording import counted
from remaster.video.probe import MediaInfo, StreamInfo

# What MP4 can carry as-is (FFmpeg's mov muxer, mp4 mode); other audio is encoded.
MP4_AUDIO = {"aac", "mp3", "mp2", "ac3", "eac3", "opus", "flac", "alac"}
TEXT_SUBTITLES = {"ass", "ssa", "subrip", "srt", "webvtt", "mov_text", "text"}
# ffmpeg audio encoders a policy may name, and the codec each writes (what copy lists compare with).
AUDIO_ENCODERS = {"aac": "aac", "libopus": "opus", "flac": "flac", "ac3": "ac3", "eac3": "eac3", "libmp3lame": "mp3"}
ANY_CODEC = "*"
# The channel layouts libopus encodes (mapping family 1, Vorbis order), by channel count; another
# layout with that many channels (5.1(side) from AC-3 or DTS, 7.1(wide)...) is remapped to it first.
# swresample moves side channels to back ones (and the like) with a gain of 1: nothing is mixed down.
OPUS_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_NO_ATTACHMENTS = "MP4 cannot carry attachments"
# Dropped attachments named in their one note: enough to recognise them, while a release that
# carries dozens of fonts still gets one short line.
_NAMED_ATTACHMENTS = 3
_SPEC_KINDS = {"video": "v", "audio": "a", "subtitle": "s", "attachment": "t"}  # ffmpeg's stream specifiers


class Action(StrEnum):
    KEEP = "keep"  # copied as it is (an MP4 cover stays a video stream with the attached_pic disposition)
    CONVERT = "convert"  # encoded with `codec`
    DROP = "drop"  # left out, `reason` says why
    ATTACH = "attach"  # a cover image written back as an attachment (Matroska shows it as one)
    BURN = "burn"  # drawn into the picture by the command, so not kept soft as well


@dataclass(frozen=True)
class StreamPolicy:
    """What a command allows beyond the container's own limits."""

    purpose: str  # what is done to the main video, for notes: "remastered", "exported"
    name: str  # who sets the audio rule, for notes: "upload-av1 copies opus, aac"
    audio_copy: tuple[str, ...] = (ANY_CODEC,)  # audio codecs copied as they are; the rest is encoded
    audio_encoder: str = "aac"  # an ffmpeg encoder, a key of AUDIO_ENCODERS
    audio_bitrate: str = "256k"  # "" = the encoder's default (lossless flac takes none)

    def copies(self, codec: str) -> bool:
        return ANY_CODEC in self.audio_copy or codec in self.audio_copy


# The video job keeps every stream the container can hold; audio MP4 cannot carry becomes AAC at
# 256k, the rate the mux has always used (its MP4_AUDIO_FALLBACK), so its outputs stay the same.
MUX_POLICY = StreamPolicy("remastered", "remaster")


@dataclass(frozen=True)
class StreamDecision:
    stream: StreamInfo
    action: Action
    output: str = ""  # ffmpeg's output stream specifier ("a:1") of a mapped stream; "" when not mapped
    options: tuple[tuple[str, str], ...] = ()  # per-stream options beyond copying, without the specifier
    note: str = ""  # what the user is told: what was dropped or converted, and why

    @property
    def mapped(self) -> bool:
        return self.action in (Action.KEEP, Action.CONVERT)


@dataclass(frozen=True)
class StreamPlan:
    decisions: tuple[StreamDecision, ...]

    @property
    def maps(self) -> list[str]:
        """The source's stream indices that go into the output, in output order (after the new video)."""
        return [str(d.stream.index) for d in self.decisions if d.mapped]

    @property
    def options(self) -> dict[str, str]:
        """Per-output-stream options ({"c:a:1": "aac"}), for a command that copies every other stream."""
        return {f"{key}:{d.output}": value for d in self.decisions for key, value in d.options}

    def args(self) -> list[str]:
        """The same as ffmpeg arguments, each stream's -map followed by its options (input 0 is the source)."""
        args: list[str] = []
        for d in self.decisions:
            if d.mapped:
                args += ["-map", f"0:{d.stream.index}"]
                args += [arg for key, value in d.options for arg in (f"-{key}:{d.output}", value)]
        return args

    @property
    def covers(self) -> list[StreamInfo]:
        """Cover images to write back as attachments."""
        return [d.stream for d in self.decisions if d.action == Action.ATTACH]

    @property
    def notes(self) -> list[str]:
        """One line per stream dropped or converted; dropped attachments (fonts, often dozens) in one line."""
        notes = [d.note for d in self.decisions if d.note and not _dropped_attachment(d)]
        dropped = [d for d in self.decisions if _dropped_attachment(d)]
        if dropped:
            names = [d.stream.title or f"#{d.stream.index}" for d in dropped]
            listed = ", ".join(names[:_NAMED_ATTACHMENTS])
            if len(names) > _NAMED_ATTACHMENTS:
                listed += f" and {len(names) - _NAMED_ATTACHMENTS} more"
            notes.append(f"dropped {counted(len(dropped), 'attachment')} ({listed}): {_NO_ATTACHMENTS}")
        return notes

    def converted(self, kind: str) -> list[StreamDecision]:
        return [d for d in self.decisions if d.action == Action.CONVERT and d.stream.kind == kind]


def _dropped_attachment(decision: StreamDecision) -> bool:
    return decision.action == Action.DROP and decision.stream.kind == "attachment"


def plan_streams(
    media: MediaInfo,
    container: str,
    policy: StreamPolicy,
    burned: int | None = None,
    audio_layouts: Mapping[int, tuple[str | None, int]] | None = None,
) -> StreamPlan:
    """What becomes of every stream of `media` but the main video in a `container` (matroska or mp4)
    file. `burned`: the index of a subtitle track drawn into the picture; `audio_layouts`: each audio
    stream's channel layout and count, by index (needed only where the policy encodes to Opus)."""
    mp4 = container == "mp4"
    counts = {"v": 1, "a": 0, "s": 0, "t": 0}  # output streams by kind; v:0 is the new video
    decisions = []
    for s in media.streams:
        if s.index == media.video.index:
            continue
        if s.index == burned:
            decisions.append(StreamDecision(s, Action.BURN))
            continue
        decision = _decide(s, mp4, policy, (audio_layouts or {}).get(s.index, (None, 0)))
        if decision.mapped:
            kind = _SPEC_KINDS[s.kind]
            decision = replace(decision, output=f"{kind}:{counts[kind]}")
            counts[kind] += 1
        decisions.append(decision)
    return StreamPlan(tuple(decisions))


def _decide(s: StreamInfo, mp4: bool, policy: StreamPolicy, layout: tuple[str | None, int]) -> StreamDecision:
    if s.kind == "video" and s.attached_pic:
        # Cover art: MP4 holds it as a one-frame video stream with the attached_pic disposition;
        # Matroska wants it back as an attachment, or it becomes a video track.
        if mp4:
            return StreamDecision(s, Action.KEEP, options=(("disposition", "attached_pic"),))
        return StreamDecision(s, Action.ATTACH)
    if s.kind == "video":
        note = f"dropped {s.describe()}: only the main video stream is {policy.purpose}"
        return StreamDecision(s, Action.DROP, note=note)
    if s.kind == "audio":
        return _decide_audio(s, mp4, policy, layout)
    if s.kind == "subtitle":
        if mp4 and s.codec not in TEXT_SUBTITLES:
            note = f"dropped {s.describe()}: MP4 cannot carry {s.codec} subtitles"
            return StreamDecision(s, Action.DROP, note=note)
        if mp4 and s.codec != "mov_text":
            styled = " (styling lost)" if s.codec in ("ass", "ssa") else ""
            note = f"converted {s.describe()} to mov_text{styled}: MP4's only text subtitle format"
            return StreamDecision(s, Action.CONVERT, options=(("c", "mov_text"),), note=note)
        if not mp4 and s.codec == "mov_text":
            note = f"converted {s.describe()} to srt: Matroska cannot carry mov_text"
            return StreamDecision(s, Action.CONVERT, options=(("c", "srt"),), note=note)
        return StreamDecision(s, Action.KEEP)
    if s.kind == "attachment":
        if mp4:
            return StreamDecision(s, Action.DROP, note=f"dropped {s.describe()}: {_NO_ATTACHMENTS}")
        return StreamDecision(s, Action.KEEP)
    return StreamDecision(s, Action.DROP, note=f"dropped {s.describe()}: {s.kind} streams are not kept")


def _decide_audio(s: StreamInfo, mp4: bool, policy: StreamPolicy, layout: tuple[str | None, int]) -> StreamDecision:
    fits = not mp4 or s.codec in MP4_AUDIO
    if policy.copies(s.codec) and fits:
        return StreamDecision(s, Action.KEEP)
    encoder, bitrate = policy.audio_encoder, policy.audio_bitrate
    options = (("c", encoder), *((("b", bitrate),) if bitrate else ()))
    encoded = f"{AUDIO_ENCODERS[encoder]} {bitrate}".strip()
    name, channels = layout
    if encoder == "libopus" and name not in OPUS_LAYOUTS.values() and channels in OPUS_LAYOUTS:
        options += (("filter", f"aformat=channel_layouts={OPUS_LAYOUTS[channels]}"),)
        encoded += f" ({name} as {OPUS_LAYOUTS[channels]})"
    if policy.copies(s.codec):  # the container is the reason
        note = f"converted {s.describe()} to {encoded}: MP4 cannot carry {s.codec}"
    else:
        copied = ", ".join(policy.audio_copy) or "no audio"
        note = f"encoded {s.describe()} as {encoded}: {policy.name} copies {copied}"
    return StreamDecision(s, Action.CONVERT, options=options, note=note)
