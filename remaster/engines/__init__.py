"""The runtimes that run a loaded network on frames: `base.Upscaler` is what every engine is;
`torch_engine/` and `ncnn_engine/` are runtimes; `tiling/` holds the tile strategies they share;
`choice.make_upscaler` picks one for a device and `--engine`."""
