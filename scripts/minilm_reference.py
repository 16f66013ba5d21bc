"""Reference sentence embeddings for all-MiniLM-L6-v2, computed independently of candle.

A float64 NumPy implementation of BERT (as in Hugging Face transformers' modeling_bert.py) run on the
float32 weights, with mask-aware mean pooling and L2 normalisation, as sentence-transformers does.
Tokenisation uses the `tokenizers` package with the model's tokenizer.json, padding off,
truncation at 256 tokens (sentence_bert_config.json's max_seq_length).

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install numpy tokenizers safetensors
    /tmp/refenv/bin/python scripts/minilm_reference.py MODEL_DIR > crates/text/tests/fixtures/minilm_reference.json

Not a dependency of Condor: it only regenerates the numbers the text encoder's tests compare with.
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "a red bird",
    "a small red bird",
    "a blue truck",
    "this bird has a bright yellow crown, black wings and a short pointed beak",
    "鸟 🐦 with unicode",
]


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(model_dir, text):
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = {k: v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    p = "" if "embeddings.word_embeddings.weight" in w else "bert."
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(256)
    ids = np.array(tok.encode(text).ids)
    t = len(ids)
    x = w[p + "embeddings.word_embeddings.weight"][ids]
    x = x + w[p + "embeddings.position_embeddings.weight"][:t] + w[p + "embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"])
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        q_ = f"{p}encoder.layer.{i}."
        lin = lambda h, n: h @ w[q_ + n + ".weight"].T + w[q_ + n + ".bias"]
        q = lin(x, "attention.self.query").reshape(t, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(t, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(t, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = a.transpose(1, 0, 2).reshape(t, heads * d)
        x = layer_norm(lin(a, "attention.output.dense") + x,
                       w[q_ + "attention.output.LayerNorm.weight"], w[q_ + "attention.output.LayerNorm.bias"])
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(h, "output.dense") + x, w[q_ + "output.LayerNorm.weight"], w[q_ + "output.LayerNorm.bias"])
    e = x.mean(0)  # one sentence, no padding: the mask-aware mean is the plain mean
    return ids.tolist(), (e / np.linalg.norm(e)).tolist()


if __name__ == "__main__":
    out = []
    for s in SENTENCES:
        ids, e = embed(sys.argv[1], s)
        out.append({"text": s, "token_ids": ids, "embedding": [round(v, 8) for v in e]})
    json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2 (float32 weights)",
               "method": "scripts/minilm_reference.py: float64 NumPy BERT, mean pooling, L2 norm",
               "sentences": out}, sys.stdout, indent=1)
    print()
