#!/usr/bin/env python3
"""Make a tiny Qwen2-architecture model with random (seeded) weights for tests, the way the real
models are made: a GGUF of random GGML blocks, written as ONNX by gguf_onnx.py.

    python make_tiny_model.py --layout genai|optimum|genai-cuda-fp16 --out DIR --tokenizer PATH/tokenizer.json

The model has the real Qwen2.5 vocabulary (151936) so the real tokenizer works, but only
hidden 64, intermediate 256, 2 layers, 4 heads, 2 KV heads, head_dim 16, rope
theta 1e6, tied embeddings (the LM head a float32 MatMul of the Q8_0 values: through MatMulNBits
computing in f32 its 151,936 columns made every token ~60 ms). Its weights are random bytes in the block types a Q4_K_M GGUF holds and a few more
(Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K, F16), with scales chosen so activations stay finite.

* ``--layout genai``: gguf_onnx.py's CPU graph, as fetch_default_model.py prepares the real models
  (MatMulNBits, GroupQueryAttention, ``logits_to_keep``) computing in f32, plus a prefill graph
  (``model.prefill.onnx``: 4-bit MatMulNBits in f32) so the tests run the server's switch.
* ``--layout genai-cuda-fp16``: gguf_onnx.py's CUDA variant (float16 weights, KV and logits), to
  test the server's f16 path on the CPU.
* ``--layout optimum``: ``model.onnx`` in Optimum's text-generation-with-past layout, written here
  with onnx.helper from standard ops (opset 17) and the GGUF's dequantized weights:
  inputs  input_ids [batch, seq] i64, attention_mask [batch, past+seq] i64,
          position_ids [batch, seq] i64, past_key_values.N.key/.value [batch, 2, past, 16] f32;
  outputs logits [batch, seq, 151936] f32, present.N.key/.value [batch, 2, past+seq, 16] f32.

Each also gets tokenizer.json (copied; FIM markers made special if they were not) and
ghostline.json. The script checks the graph's logits (prefill, then one decode step fed the
present KV) against gguf_onnx.reference_logits (numpy, float64, ggml's own dequantization), prints
the graph's inputs/outputs, and writes ``.complete`` last; a DIR already complete is skipped.
No torch, no transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fetch_default_model as fdm  # noqa: E402  (shared token tables + tokenizer fix)
import gguf_onnx  # noqa: E402

SEED = 0
CFG = dict(
    vocab_size=151936,
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=4096,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
)
# `--shape 0.5b`: Qwen2.5-Coder-0.5B's shape with random weights, for timing where the real
# weights cannot be carried (the lent GPU machine; see gpu_bench.sh).
SHAPES = {
    "tiny": CFG,
    "0.5b": dict(CFG, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, head_dim=64, max_position_embeddings=32768),
}
MARK_VERSION = "tiny-gguf-v5"
# Per layer (cycled): the GGML type of each weight. token_embd is Q8_0 (looked up as codes).
LAYER_TYPES = [
    {"attn_q": "Q5_0", "attn_k": "Q4_0", "attn_v": "Q8_0", "attn_output": "Q5_1",
     "ffn_gate": "Q4_1", "ffn_up": "Q5_0", "ffn_down": "Q4_K"},
    {"attn_q": "Q8_0", "attn_k": "Q5_0", "attn_v": "Q4_0", "attn_output": "Q5_0",
     "ffn_gate": "Q5_0", "ffn_up": "F16", "ffn_down": "Q6_K"},
]
# Graph against the float64 reference, as a share of the largest |logit| (~50 here): with
# MatMulNBits computing in f32 the two agree to rounding (EXACT_RTOL); float16 weights and
# activations (the CUDA variant) move them by about 0.1%.
EXACT_RTOL = 1e-5
RTOL = {"genai": EXACT_RTOL, "optimum": EXACT_RTOL, "genai-cuda-fp16": 0.01}


def log(msg: str) -> None:
    print(f"[tiny] {msg}", flush=True)


# ---------------------------------------------------------------- random GGUF
# bytes per block, elements per block, byte offsets of float16 fields and the magnitude of each
# (as a multiple of the wanted weight scale) so that weights come out ~ N(0, 1/K).
BLOCK = {
    "Q8_0": (34, 32, {0: 1 / 64}),
    "Q4_0": (18, 32, {0: 1 / 4}),
    "Q4_1": (20, 32, {0: 1 / 8, 2: -1.0}),
    "Q5_0": (22, 32, {0: 1 / 8}),
    "Q5_1": (24, 32, {0: 1 / 16, 2: -1.0}),
    "Q4_K": (144, 256, {0: 1 / 120, 2: 1 / 64}),
    "Q5_K": (176, 256, {0: 1 / 240, 2: 1 / 64}),
    "Q6_K": (210, 256, {208: 1 / 512}),
}


def random_blocks(rng, kind: str, rows: int, cols: int, scale: float) -> np.ndarray:
    """Random GGML blocks [rows, bytes per row]: random codes and scale bytes, float16 fields set
    to ± ``scale`` times the type's factor (random sign only where ggml allows a sign)."""
    size, per, fields = BLOCK[kind]
    raw = rng.integers(0, 256, size=(rows, cols // per, size), dtype=np.uint8)
    for off, factor in fields.items():
        mag = (scale * abs(factor) * rng.uniform(0.5, 1.5, size=raw.shape[:2])).astype(np.float16)
        if factor < 0:
            mag = -mag
        raw[..., off:off + 2] = mag.view(np.uint8).reshape(*raw.shape[:2], 2)
    return raw.reshape(rows, -1)


def write_random_gguf(path: Path, cfg: dict, seed: int = SEED) -> None:
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name(f"ghostline random qwen2 seed {seed}")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    H, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    Hq = cfg["num_attention_heads"] * cfg["head_dim"]
    Hkv = cfg["num_key_value_heads"] * cfg["head_dim"]

    def mat(name: str, kind: str, rows: int, cols: int, scale: float) -> None:
        if kind == "F16":
            w.add_tensor(name, (rng.standard_normal((rows, cols)) * scale).astype(np.float16))
        else:
            w.add_tensor(name, random_blocks(rng, kind, rows, cols, scale), raw_dtype=gguf.GGMLQuantizationType[kind])

    def vec(name: str, n: int, mean: float, sd: float) -> None:
        w.add_tensor(name, (mean + sd * rng.standard_normal(n)).astype(np.float32))

    mat("token_embd.weight", "Q8_0", V, H, 1.0)
    for i in range(cfg["num_hidden_layers"]):
        t = LAYER_TYPES[i % len(LAYER_TYPES)]
        p = f"blk.{i}"
        vec(f"{p}.attn_norm.weight", H, 1.0, 0.1)
        mat(f"{p}.attn_q.weight", t["attn_q"], Hq, H, H ** -0.5)
        vec(f"{p}.attn_q.bias", Hq, 0.0, 0.1)
        mat(f"{p}.attn_k.weight", t["attn_k"], Hkv, H, H ** -0.5)
        vec(f"{p}.attn_k.bias", Hkv, 0.0, 0.1)
        mat(f"{p}.attn_v.weight", t["attn_v"], Hkv, H, H ** -0.5)
        vec(f"{p}.attn_v.bias", Hkv, 0.0, 0.1)
        mat(f"{p}.attn_output.weight", t["attn_output"], H, Hq, Hq ** -0.5)
        vec(f"{p}.ffn_norm.weight", H, 1.0, 0.1)
        mat(f"{p}.ffn_gate.weight", t["ffn_gate"], F, H, H ** -0.5)
        mat(f"{p}.ffn_up.weight", t["ffn_up"], F, H, H ** -0.5)
        mat(f"{p}.ffn_down.weight", t["ffn_down"], H, F, F ** -0.5)
    vec("output_norm.weight", H, 1.0, 0.1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def hf_state_dict(g: gguf_onnx.Gguf) -> dict[str, np.ndarray]:
    """The GGUF's weights dequantized (ggml's reader) under Hugging Face Qwen2 names."""
    c = g.config()
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    per = {"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
           "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj"}
    for i in range(c.n_layers):
        for k, v in per.items():
            if k.endswith(".weight"):
                names[f"blk.{i}.{k}"] = f"model.layers.{i}.{v}"
            else:
                names[f"blk.{i}.{k}.weight"] = f"model.layers.{i}.{v}.weight"
                names[f"blk.{i}.{k}.bias"] = f"model.layers.{i}.{v}.bias"
    sd = {}
    for gname, hname in names.items():
        if gname not in g.tensors:
            continue
        t = g.tensors[gname]
        sd[hname] = (np.asarray(t.data, np.float32) if len(t.shape) == 1 or t.tensor_type.name == "F32"
                     else g.dequantize(gname))
    return sd


class _Cfg:
    def __init__(self, c: gguf_onnx.Qwen2Config):
        self.hidden_size, self.num_attention_heads = c.hidden, c.n_heads
        self.num_key_value_heads, self.head_dim = c.n_kv_heads, c.head_dim
        self.num_hidden_layers, self.vocab_size, self.rms_norm_eps = c.n_layers, c.vocab, c.rms_eps


class _Model:
    """What build_optimum_graph reads: ``config`` and ``state_dict()`` of numpy arrays."""

    def __init__(self, g: gguf_onnx.Gguf):
        self.config = _Cfg(g.config())
        self._sd = hf_state_dict(g)

    def state_dict(self):
        return self._sd


# ---------------------------------------------------------------- Optimum-layout graph
def build_optimum_graph(model, path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = model.config
    H, NH, KVH, D = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim
    L, V, eps = c.num_hidden_layers, c.vocab_size, c.rms_norm_eps
    sd = {k: np.asarray(v, np.float32) for k, v in model.state_dict().items()}

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr, prefix="c"):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(op, inputs, n_out=1, **attrs):
        outs = [name(op) for _ in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=name(op + "_node"), **attrs))
        return outs[0] if n_out == 1 else outs

    def weight(key, transpose=False):
        arr = sd[key].T.copy() if transpose else sd[key]
        n = key
        inits.append(numpy_helper.from_array(arr, n))
        return n

    def linear(x, prefix, bias=True):
        y = node("MatMul", [x, weight(prefix + ".weight", transpose=True)])
        if bias:
            y = node("Add", [y, weight(prefix + ".bias")])
        return y

    eps_c = const(np.array(eps, np.float32), "eps")

    def rmsnorm(x, key):
        var = node("ReduceMean", [node("Mul", [x, x])], axes=[-1], keepdims=1)
        inv = node("Reciprocal", [node("Sqrt", [node("Add", [var, eps_c])])])
        return node("Mul", [node("Mul", [x, inv]), weight(key)])

    # ---- inputs
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", V])]
    for i in range(L):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch_size", KVH, "past_sequence_length", D]))
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT, ["batch_size", KVH, "total_sequence_length", D]))

    # ---- shared: rotary tables and attention mask
    inv_freq = (1.0 / (CFG["rope_theta"] ** (np.arange(0, D, 2, dtype=np.int64).astype(np.float32) / D))).astype(np.float32)
    pos = node("Unsqueeze", [node("Cast", ["position_ids"], to=TensorProto.FLOAT), const(np.array([-1], np.int64))])
    freqs = node("Mul", [pos, const(inv_freq, "inv_freq")])                  # [B,S,D/2]
    emb = node("Concat", [freqs, freqs], axis=-1)                             # [B,S,D]
    ax1 = const(np.array([1], np.int64))
    cos = node("Unsqueeze", [node("Cos", [emb]), ax1])                        # [B,1,S,D]
    sin = node("Unsqueeze", [node("Sin", [emb]), ax1])

    one_i = const(np.array(1, np.int64))
    zero_i = const(np.array(0, np.int64))
    sq0 = const(np.array([0], np.int64))
    total = node("Squeeze", [node("Shape", ["attention_mask"], start=1, end=2), sq0])
    seq = node("Squeeze", [node("Shape", ["input_ids"], start=1, end=2), sq0])
    past = node("Squeeze", [node("Shape", ["past_key_values.0.key"], start=2, end=3), sq0])
    key_idx = node("Range", [zero_i, total, one_i])                           # [T]
    q_idx = node("Unsqueeze", [node("Range", [past, node("Add", [past, seq]), one_i]), ax1])  # [S,1]
    causal = node("LessOrEqual", [key_idx, q_idx])                            # [S,T]
    pad = node("Unsqueeze", [node("Cast", ["attention_mask"], to=TensorProto.BOOL),
                             const(np.array([1, 2], np.int64))])              # [B,1,1,T]
    mask = node("And", [causal, pad])                                         # [B,1,S,T]
    neg = const(np.array(np.finfo(np.float32).min, np.float32), "neg")
    scale = const(np.array(1.0 / np.sqrt(D), np.float32), "scale")
    half = [const(np.array([D // 2, D // 2], np.int64), "split")]

    def rotate(x):  # x*cos + rotate_half(x)*sin, x: [B,h,S,D]
        x1, x2 = node("Split", [x, *half], n_out=2, axis=-1)
        rot = node("Concat", [node("Neg", [x2]), x1], axis=-1)
        return node("Add", [node("Mul", [x, cos]), node("Mul", [rot, sin])])

    def heads(x, n):  # [B,S,n*D] -> [B,n,S,D]
        return node("Transpose", [node("Reshape", [x, const(np.array([0, 0, n, D], np.int64))])], perm=[0, 2, 1, 3])

    def repeat_kv(x):  # [B,KVH,T,D] -> [B,NH,T,D]
        if NH == KVH:
            return x
        x = node("Unsqueeze", [x, const(np.array([2], np.int64))])
        x = node("Expand", [x, const(np.array([1, 1, NH // KVH, 1, 1], np.int64))])
        return node("Reshape", [x, const(np.array([0, NH, -1, D], np.int64))])

    h = node("Gather", ["model.embed_tokens.weight", "input_ids"], axis=0)
    inits.append(numpy_helper.from_array(sd["model.embed_tokens.weight"], "model.embed_tokens.weight"))
    for i in range(L):
        p = f"model.layers.{i}"
        x = rmsnorm(h, f"{p}.input_layernorm.weight")
        q = rotate(heads(linear(x, f"{p}.self_attn.q_proj"), NH))
        k = rotate(heads(linear(x, f"{p}.self_attn.k_proj"), KVH))
        v = heads(linear(x, f"{p}.self_attn.v_proj"), KVH)
        nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.key", k], [f"present.{i}.key"], axis=2,
                                      name=f"present_{i}_key"))
        nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.value", v], [f"present.{i}.value"], axis=2,
                                      name=f"present_{i}_value"))
        kr, vr = repeat_kv(f"present.{i}.key"), repeat_kv(f"present.{i}.value")
        scores = node("Mul", [node("MatMul", [q, node("Transpose", [kr], perm=[0, 1, 3, 2])]), scale])
        probs = node("Softmax", [node("Where", [mask, scores, neg])], axis=-1)
        attn = node("Transpose", [node("MatMul", [probs, vr])], perm=[0, 2, 1, 3])
        attn = node("Reshape", [attn, const(np.array([0, 0, NH * D], np.int64))])
        h = node("Add", [h, linear(attn, f"{p}.self_attn.o_proj", bias=False)])
        x = rmsnorm(h, f"{p}.post_attention_layernorm.weight")
        gate = linear(x, f"{p}.mlp.gate_proj", bias=False)
        up = linear(x, f"{p}.mlp.up_proj", bias=False)
        act = node("Mul", [node("Mul", [gate, node("Sigmoid", [gate])]), up])
        h = node("Add", [h, linear(act, f"{p}.mlp.down_proj", bias=False)])
    h = rmsnorm(h, "model.norm.weight")
    if "lm_head.weight" in sd:
        lm_head = weight("lm_head.weight", transpose=True)
    else:
        lm_head = node("Transpose", ["model.embed_tokens.weight"], perm=[1, 0])  # tied embeddings
    nodes.append(helper.make_node("MatMul", [h, lm_head], ["logits"], name="lm_head"))

    graph = helper.make_graph(nodes, "ghostline_tiny_qwen2", inputs, outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="ghostline make_tiny_model.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


# ---------------------------------------------------------------- verification
def describe(sess) -> list[str]:
    lines = []
    for kind, items in (("input", sess.get_inputs()), ("output", sess.get_outputs())):
        for a in items:
            lines.append(f"{kind:6s} {a.name:28s} {a.type:16s} {a.shape}")
    return lines


def ort_two_steps(model_path: Path, prompt_ids: list[int], nxt: int, kv: tuple[int, int, int], kv_type=np.float32):
    """Prefill then one decode step with plain onnxruntime, feeding present -> past."""
    import onnxruntime as ort

    L, KVH, D = kv
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()} | {i.name for i in sess.get_overridable_initializers()}
    out_names = [o.name for o in sess.get_outputs()]
    s = len(prompt_ids)

    def feeds(ids, pos0, total, past):
        f = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, total), np.int64)}
        if "position_ids" in names:
            f["position_ids"] = np.arange(pos0, pos0 + len(ids), dtype=np.int64)[None]
        for i in range(L):
            for kind in ("key", "value"):
                f[f"past_key_values.{i}.{kind}"] = past[f"present.{i}.{kind}"]
        return f

    empty = {f"present.{i}.{k}": np.zeros((1, KVH, 0, D), kv_type) for i in range(L) for k in ("key", "value")}
    first = feeds(prompt_ids, 0, s, empty)
    if "logits_to_keep" in names:  # every prompt position's logits, to compare them all
        first["logits_to_keep"] = np.array([s], np.int64)
    r1 = dict(zip(out_names, sess.run(None, first)))
    r2 = dict(zip(out_names, sess.run(None, feeds([nxt], s, s + 1, r1))))
    for i in range(L):
        for k in ("key", "value"):
            shp = r2[f"present.{i}.{k}"].shape
            if tuple(shp) != (1, KVH, s + 1, D):
                raise SystemExit(f"present.{i}.{k} after decode has shape {shp}, expected {(1, KVH, s + 1, D)}")
    return sess, r1["logits"][0].astype(np.float32), r2["logits"][0].astype(np.float32)


def compare(label: str, got, want, rtol: float) -> float:
    got = np.asarray(got, np.float32).reshape(np.asarray(want).shape)
    d = float(np.max(np.abs(got - want)))
    atol = rtol * float(np.max(np.abs(want)))
    log(f"{label}: max |diff| = {d:.2e} (max |logit| {float(np.max(np.abs(want))):.2f}, allowed {atol:.2e})")
    if not d <= atol:
        raise SystemExit(f"[tiny] {label}: logits differ by {d} > {atol}")
    return d


# ---------------------------------------------------------------- main
def write_common(out: Path, tokenizer: Path, c: gguf_onnx.Qwen2Config, name: str) -> None:
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    fdm.fix_tokenizer_json(out / "tokenizer.json")
    fdm.check_tokenizer(out / "tokenizer.json")
    fdm.write_ghostline_json(out, name, c, {"gguf_sha256": None, "converter": f"make_tiny_model.py random seed {SEED}"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layout", choices=["genai", "optimum", "genai-cuda-fp16"], required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--tokenizer", required=True, type=Path, help="the real Qwen2.5 tokenizer.json")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny",
                    help="0.5b: Qwen2.5-Coder-0.5B's dimensions (random weights), for timing")
    args = ap.parse_args(argv)

    out: Path = args.out
    stamp = f"{MARK_VERSION} {args.layout}" + ("" if args.shape == "tiny" else f" {args.shape}")
    if (out / ".complete").is_file() and (out / ".complete").read_text().strip() == stamp and not args.force:
        print(f"[tiny] up to date: {out} ({args.layout}), nothing to do")
        return 0
    if not args.tokenizer.is_file():
        print(f"[tiny] error: tokenizer {args.tokenizer} not found", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    from tokenizers import Tokenizer

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gguf_path = tmp / "random.gguf"
    write_random_gguf(gguf_path, SHAPES[args.shape])
    g = gguf_onnx.Gguf(gguf_path)
    c = g.config()
    fp16 = args.layout == "genai-cuda-fp16"
    if args.layout == "optimum":
        build_optimum_graph(_Model(g), tmp / "model.onnx")
    else:
        # accuracy_level 1 (f32 compute): random weights put many tokens within rounding of each
        # other, and the tests compare answers across graphs (prefill graph, float16 variant,
        # prompt lookup's verification), so the tiny model computes as exactly as it can.
        counts = gguf_onnx.write_model(g, tmp, "fp16" if fp16 else "q", accuracy_level=1, log=log, dense_head=True)
        log("weights: " + ", ".join(f"{n} x {k}" for k, n in counts.items()))
    write_common(tmp, args.tokenizer, c, "tiny-random-qwen2" if args.shape == "tiny" else f"random-qwen2-{args.shape}-shape")
    if args.layout == "genai":
        fdm.add_prefill_graph(tmp)

    if args.shape == "tiny":
        tok = Tokenizer.from_file(str(args.tokenizer))
        prompt_ids = tok.encode(fdm.FIM_TEMPLATE.format(prefix="def add(a, b):\n    ", suffix="\n"),
                                add_special_tokens=False).ids
        ref = gguf_onnx.reference_logits(g, prompt_ids)
        nxt = int(np.argmax(ref[-1]))
        ref2 = gguf_onnx.reference_logits(g, prompt_ids + [nxt])
        kv = (c.n_layers, c.n_kv_heads, c.head_dim)
        atol = RTOL[args.layout]
        sess, l1, l2 = ort_two_steps(tmp / "model.onnx", prompt_ids, nxt, kv, np.float16 if fp16 else np.float32)
        compare("onnxruntime prefill", l1, ref[-len(l1):], atol)
        compare("onnxruntime decode ", l2, ref2[-1:], atol)
        if args.layout == "genai":
            _, p1, _ = ort_two_steps(tmp / fdm.PREFILL_ONNX, prompt_ids, nxt, kv)
            compare("prefill graph      ", p1, ref[-len(p1):], atol)
        for line in describe(sess):
            log(line)
    gguf_path.unlink()

    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    (out / ".complete").write_text(stamp + "\n")
    log(f"wrote {out} ({args.layout}) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
