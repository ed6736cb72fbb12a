#!/usr/bin/env bash
# The wheels that let scripts/gpu_check.sh execute chapter 1 on the GPU machine, whose image has
# PyTorch, Triton, matplotlib and einops but not Jupyter's execution stack (nbclient, ipykernel
# and what they need, for the image's Python 3.12 on x86-64 Linux). They go to .whl/ (git-ignored,
# carried to the machine with the device tool's `carry`), about 5 MB; the versions are the ones
# mixlib's own environment runs its notebooks with. Left out, to fit what travels: debugpy
# (ipykernel's debugger) and jedi with parso (IPython's completion), 10 MB that executing a
# notebook does not need (checked: nbclient executes a notebook without them).
#
#   scripts/gpu_wheels.sh          # on a machine with pip and the package index
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl \
  asttokens==3.0.2 comm==0.2.3 executing==2.3.0 fastjsonschema==2.22.3 \
  ipykernel==7.4.0 ipython==9.18.1 ipython_pygments_lexers==1.1.1 \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 jupyter_client==8.10.0 \
  jupyter_core==5.9.1 matplotlib-inline==0.2.2 nbclient==0.11.0 nbformat==5.11.1 \
  nest-asyncio2==1.7.4 pexpect==4.9.0 platformdirs==4.14.9 prompt_toolkit==3.0.53 \
  ptyprocess==0.7.0 pure_eval==0.2.4 pyzmq==27.3.0 referencing==0.37.0 rpds-py==2026.9.1 \
  stack-data==0.6.3 tornado==6.6.1 traitlets==5.16.1 wcwidth==0.9.4
ls .whl | wc -l
