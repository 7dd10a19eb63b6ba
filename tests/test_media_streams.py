"""The stream-mapping plan shared by the mux and export (remaster/video/streams.py), without media files:
the streams are written out here as probe would report them."""

from __future__ import annotations

import dataclasses
import pickle
from fractions import Fraction
from pathlib import Path

import pytest

from remaster.export.job import stream_policy
from remaster.export.targets import get_target
from remaster.video.probe import MediaInfo, StreamInfo, VideoInfo
from remaster.video.streams import MUX_POLICY, Action, StreamPolicy, plan_streams

VIDEO = StreamInfo(0, "video", "h264", "jpn", None, False)
FLAC = StreamInfo(1, "audio", "flac", "jpn", None, False)
VORBIS = StreamInfo(2, "audio", "vorbis", "eng", None, False)
ASS = StreamInfo(3, "subtitle", "ass", "eng", "Signs", False)
PGS = StreamInfo(4, "subtitle", "hdmv_pgs_subtitle", "eng", None, False)
FONT_A = StreamInfo(5, "attachment", "font/ttf", None, "a.ttf", False)
FONT_B = StreamInfo(6, "attachment", "font/otf", None, "b.otf", False)
COVER = StreamInfo(7, "video", "mjpeg", None, None, True)
ANIME_MKV = [VIDEO, FLAC, VORBIS, ASS, PGS, FONT_A, FONT_B, COVER]


def _media(streams: list[StreamInfo]) -> MediaInfo:
    video = VideoInfo(
        index=0, codec="h264", width=720, height=480, sar=Fraction(1), pix_fmt="yuv420p", bits=8, matrix="bt601",
        full_range=False, tagged={"colorspace": 0, "color_primaries": 0, "color_trc": 0, "color_range": 0},
        time_base=Fraction(1, 1000), rate=Fraction(24), pts=(0,), keyframe_pts=(0,), has_pts=True,
        declared_frames=0, declared_end=None,
    )  # fmt: skip
    return MediaInfo(Path("in.mkv"), 1, "matroska,webm", 0.0, 1.0, video, tuple(streams))


def test_mkv_keeps_every_stream_as_it_is_and_reattaches_the_cover():
    plan = plan_streams(_media(ANIME_MKV), "matroska", MUX_POLICY)
    assert [(d.stream.index, d.action, d.output) for d in plan.decisions] == [
        (1, Action.KEEP, "a:0"),
        (2, Action.KEEP, "a:1"),
        (3, Action.KEEP, "s:0"),
        (4, Action.KEEP, "s:1"),
        (5, Action.KEEP, "t:0"),
        (6, Action.KEEP, "t:1"),
        (7, Action.ATTACH, ""),
    ]
    assert plan.maps == ["1", "2", "3", "4", "5", "6"]
    assert plan.options == {} and plan.notes == [] and plan.covers == [COVER]
    assert plan.args() == ["-map", "0:1", "-map", "0:2", "-map", "0:3", "-map", "0:4", "-map", "0:5", "-map", "0:6"]


def test_mp4_converts_ass_to_mov_text_and_drops_attachments_in_one_note():
    plan = plan_streams(_media(ANIME_MKV), "mp4", MUX_POLICY)
    assert plan.maps == ["1", "2", "3", "7"]
    assert plan.covers == []  # MP4 keeps the cover as cover art: a video stream flagged attached_pic
    assert plan.options == {"c:a:1": "aac", "b:a:1": "256k", "c:s:0": "mov_text", "disposition:v:1": "attached_pic"}
    assert plan.args() == [
        "-map", "0:1",
        "-map", "0:2", "-c:a:1", "aac", "-b:a:1", "256k",
        "-map", "0:3", "-c:s:0", "mov_text",
        "-map", "0:7", "-disposition:v:1", "attached_pic",
    ]  # fmt: skip
    assert plan.notes == [
        "converted #2 audio vorbis [eng] to aac 256k: MP4 cannot carry vorbis",
        'converted #3 subtitle ass [eng] "Signs" to mov_text (styling lost): MP4\'s only text subtitle format',
        "dropped #4 subtitle hdmv_pgs_subtitle [eng]: MP4 cannot carry hdmv_pgs_subtitle subtitles",
        "dropped 2 attachments (a.ttf, b.otf): MP4 cannot carry attachments",
    ]
    many = [StreamInfo(i, "attachment", "font/ttf", None, f"{i}.ttf", False) for i in range(1, 6)]
    assert plan_streams(_media([VIDEO, *many]), "mp4", MUX_POLICY).notes == [
        "dropped 5 attachments (1.ttf, 2.ttf, 3.ttf and 2 more): MP4 cannot carry attachments"
    ]


def test_mov_text_becomes_srt_in_mkv_and_other_streams_are_dropped_with_the_reason():
    mov_text = StreamInfo(1, "subtitle", "mov_text", "eng", None, False)
    angle = StreamInfo(2, "video", "h264", None, None, False)
    timecode = StreamInfo(3, "data", "tmcd", None, None, False)
    plan = plan_streams(_media([VIDEO, mov_text, angle, timecode]), "matroska", MUX_POLICY)
    assert plan.options == {"c:s:0": "srt"}
    assert plan.notes == [
        "converted #1 subtitle mov_text [eng] to srt: Matroska cannot carry mov_text",
        "dropped #2 video h264: only the main video stream is remastered",
        "dropped #3 data tmcd: data streams are not kept",
    ]
    exported = plan_streams(_media([VIDEO, angle]), "matroska", stream_policy(get_target("archive-mkv")))
    assert exported.notes == ["dropped #2 video h264: only the main video stream is exported"]


@pytest.fixture
def builtin_targets(tmp_path, monkeypatch):
    monkeypatch.setenv("REMASTER_HOME", str(tmp_path / "home"))  # the built-in targets, not this machine's


@pytest.mark.usefixtures("builtin_targets")
def test_export_targets_copy_the_audio_they_list_and_encode_the_rest():
    ac3 = StreamInfo(1, "audio", "ac3", "jpn", None, False)
    opus = StreamInfo(2, "audio", "opus", "eng", None, False)
    aac = StreamInfo(3, "audio", "aac", None, None, False)
    media = _media([VIDEO, ac3, opus, aac])
    layouts = {1: ("5.1(side)", 6), 2: ("stereo", 2), 3: ("stereo", 2)}

    av1 = plan_streams(media, "mp4", stream_policy(get_target("upload-av1")), audio_layouts=layouts)
    # libopus takes 5.1 but not 5.1(side): the side channels are moved to the back ones first.
    assert av1.options == {"c:a:0": "libopus", "b:a:0": "192k", "filter:a:0": "aformat=channel_layouts=5.1"}
    assert av1.notes == ["encoded #1 audio ac3 [jpn] as opus 192k (5.1(side) as 5.1): upload-av1 copies opus, aac"]
    assert [d.stream.index for d in av1.converted("audio")] == [1]

    h264 = plan_streams(media, "mp4", stream_policy(get_target("upload-1080p-h264")), audio_layouts=layouts)
    assert h264.options == {"c:a:0": "aac", "b:a:0": "320k", "c:a:1": "aac", "b:a:1": "320k"}
    assert h264.notes == [
        "encoded #1 audio ac3 [jpn] as aac 320k: upload-1080p-h264 copies aac",
        "encoded #2 audio opus [eng] as aac 320k: upload-1080p-h264 copies aac",
    ]

    archive = plan_streams(media, "matroska", stream_policy(get_target("archive-mkv")))
    assert archive.options == {} and archive.notes == [] and archive.maps == ["1", "2", "3"]


def test_a_target_that_copies_any_audio_still_converts_what_mp4_cannot_carry():
    pcm = StreamInfo(1, "audio", "pcm_s16le", None, None, False)
    policy = StreamPolicy("exported", "mine", audio_copy=("*",), audio_encoder="flac", audio_bitrate="")
    plan = plan_streams(_media([VIDEO, pcm]), "mp4", policy)
    assert plan.options == {"c:a:0": "flac"}  # lossless flac takes no bitrate
    assert plan.notes == ["converted #1 audio pcm_s16le to flac: MP4 cannot carry pcm_s16le"]


def test_a_burned_subtitle_track_is_not_kept_soft_and_the_next_takes_its_number():
    srt = StreamInfo(4, "subtitle", "subrip", "jpn", None, False)
    plan = plan_streams(_media([VIDEO, FLAC, ASS, srt]), "mp4", MUX_POLICY, burned=ASS.index)
    assert [(d.stream.index, d.action, d.output) for d in plan.decisions] == [
        (1, Action.KEEP, "a:0"),
        (3, Action.BURN, ""),
        (4, Action.CONVERT, "s:0"),
    ]
    assert plan.options == {"c:s:0": "mov_text"}
    assert plan.notes == ["converted #4 subtitle subrip [jpn] to mov_text: MP4's only text subtitle format"]


def test_the_plan_is_a_frozen_value_that_pickles():
    plan = plan_streams(_media(ANIME_MKV), "mp4", MUX_POLICY)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'action'"):
        plan.decisions[0].action = Action.DROP  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(plan)) == plan
