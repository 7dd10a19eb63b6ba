"""The ncnn wheel's whole job, as benchmarks/ncnn_compare.py times it: a process of its own that
starts, loads the `.param/.bin`, and reads, upscales and writes each PNG of a folder in turn, with
the family's reference pre- and post-processing (remaster.engines.ncnn_engine.reference), fp32 on
the CPU. PyTorch is not imported: the recipe comes from the parent.

    python benchmarks/ncnn_job.py RECIPE.json MODEL.param FRAMES/ OUT/ THREADS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from remaster.engines.ncnn_engine.reference import NcnnRecipe, ncnn_net, run_recipe
from remaster.media.imagefiles import read_image


def main() -> None:
    recipe_path, param, frames, out, threads = sys.argv[1:]
    fields = json.loads(Path(recipe_path).read_text())
    recipe = NcnnRecipe(**{**fields, "padding": tuple(fields["padding"]), "blobs": tuple(fields["blobs"])})
    net = ncnn_net(Path(param), int(threads))
    Path(out).mkdir(exist_ok=True)
    for picture in sorted(Path(frames).iterdir()):
        Image.fromarray(run_recipe(recipe, net, read_image(picture))).save(Path(out) / picture.name)


if __name__ == "__main__":
    main()
