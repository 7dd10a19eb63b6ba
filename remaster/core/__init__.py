"""The shared basics every package may use: errors and their exit codes, the one output-safety rule
and atomic writes, child processes, process-wide settings, data folders, presets, modes, precision,
size limits, wording. Nothing here imports anything of remaster's outside `core/`."""
