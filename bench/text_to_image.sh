#!/usr/bin/env bash
# `just bench`'s text-to-image table: Condor's row, then PyTorch's row for the same models and step
# when torch is importable by $PYTHON (default python3), e.g. PYTHON=.venv/bin/python just bench.
# Extra arguments (--steps N, --device cuda, --config FILE) go to both; a stylegan config
# (configs/birds-stylegan*.toml) is timed against bench/stylegan_torch.py, anything else against
# bench/dcgan_torch.py (the 64x64 DCGAN). CARGO_FEATURES=cuda builds Condor's side with CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
cargo run --release --quiet ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} --example bench_text_to_image -- "$@"
twin=bench/dcgan_torch.py
case " $* " in *stylegan*) twin=bench/stylegan_torch.py ;; esac
if "$python" -c "import torch, numpy, safetensors, tokenizers, PIL" 2>/dev/null; then
    "$python" "$twin" "$@"
else
    echo "(no PyTorch row: $python cannot import torch, numpy, safetensors, tokenizers and PIL;"
    echo " pip install torch numpy safetensors tokenizers pillow in a virtual environment and set PYTHON)"
fi
