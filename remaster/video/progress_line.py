"""One line of progress fitted to a terminal's width: the bar, frames done/total, fps and a labelled
ETA first; a label (`episode 2/3`, `job 4 ep01.mkv`) and extras (the stages' busy shares) only where
there is room, in the longest of their forms that fits.

Pure: it takes the numbers and a width and gives rich `Text`; the video progress (video/progress.py)
and `remaster queue run` (scaleout/queue/actions.py) draw it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

# Bar widths in cells. Below BAR_MIN a bar no longer shows a change of a few percent; a bar is
# BAR_COMFORT wide before extras take the room, and grows to BAR_MAX with what is left (rich's
# own default bar is 40 wide).
BAR_MIN = 10
BAR_COMFORT = 16
BAR_MAX = 40


@dataclass(frozen=True)
class LineState:
    """What one progress line says. `labels` and `extras`: each the same thing in shorter and
    shorter forms, longest first; the longest that fits is shown, or none."""

    done: int
    total: int
    fps: float | None = None
    seconds_left: float | None = None
    rate: bool = True  # show fps and ETA (a segment's own line shows only its bar and count)
    labels: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()


def clock_time(seconds: float) -> str:
    """H:MM:SS."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def fps_text(fps: float | None) -> str:
    if fps is None:
        return "-.-- fps"
    return f"{fps:.2f} fps" if fps < 100 else f"{fps:.0f} fps"


def eta_text(seconds_left: float | None) -> str:
    return "ETA " + ("-:--:--" if seconds_left is None else clock_time(seconds_left))


def fit_line(state: LineState, width: int) -> Text:
    """The line, at most `width` cells: `[label] bar done/total fps ETA [extra]`."""
    count = f"{state.done:>{len(str(state.total))}}/{state.total}"
    tail = " ".join([count, fps_text(state.fps), eta_text(state.seconds_left)] if state.rate else [count])
    label = next((text for text in state.labels if len(text) + 1 + BAR_MIN + 1 + len(tail) <= width), "")
    fixed = (len(label) + 1 if label else 0) + 1 + len(tail)  # everything but the bar and the extra
    extra = next((text for text in state.extras if fixed + BAR_COMFORT + 1 + len(text) <= width), "")
    bar_width = min(BAR_MAX, width - fixed - (len(extra) + 1 if extra else 0))
    line = Text(no_wrap=True, overflow="crop")
    if label:
        line.append(label + " ", style="bold")
    if bar_width >= BAR_MIN // 2:  # narrower than that, the numbers say it better alone
        line.append_text(bar(state.done, state.total, bar_width))
        line.append(" ")
    line.append(count, style="progress.download")
    if state.rate:
        line.append(" " + fps_text(state.fps), style="progress.data.speed")
        line.append(" " + eta_text(state.seconds_left), style="progress.remaining")
    if extra:
        line.append(" " + extra, style="dim")
    line.truncate(width)
    return line


def bar(done: int, total: int, width: int) -> Text:
    """`━━━━━━━━━━` in two colours, the done part first."""
    filled = width if total <= 0 else min(width, width * done // total)
    style = "bar.finished" if filled == width else "bar.complete"
    return Text.assemble(("━" * filled, style), ("━" * (width - filled), "bar.back"))
