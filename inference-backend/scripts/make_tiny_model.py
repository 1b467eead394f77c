#!/usr/bin/env python3
"""Make a tiny Qwen2-architecture model with random (seeded) weights for tests.

    python make_tiny_model.py --layout genai|optimum --out DIR --tokenizer PATH/tokenizer.json

The model has the real Qwen2.5 vocabulary (151936) so the real tokenizer works, but only
hidden 64, 2 layers, 4 heads, 2 KV heads, head_dim 16, tied embeddings, rope theta 1e6.

* ``--layout genai``: a random HF checkpoint (transformers ``Qwen2ForCausalLM(config)``) is
  converted by the onnxruntime-genai model builder (fp32, cpu): ``genai_config.json`` +
  ``model.onnx`` (+ ``model.onnx.data``), GroupQueryAttention inside, LM head pruned to the last
  ``logits_to_keep`` positions (an input defaulting to 1: logits [batch, 1, 151936]), as
  fetch_default_model.py makes the default model.
* ``--layout optimum``: ``model.onnx`` in Optimum's text-generation-with-past layout, written
  here with onnx.helper from standard ops (opset 17):
  inputs  input_ids [batch, seq] i64, attention_mask [batch, past+seq] i64,
          position_ids [batch, seq] i64, past_key_values.N.key/.value [batch, 2, past, 16] f32;
  outputs logits [batch, seq, 151936] f32, present.N.key/.value [batch, 2, past+seq, 16] f32.

Both also get tokenizer.json (copied; FIM markers made special if they were not),
ghostline.json and config.json.  The script verifies that onnxruntime's logits (prefill, then
one decode step fed the present KV) match transformers' for the same weights, prints the
graph's inputs/outputs, and writes ``.complete`` last; a DIR that is already complete is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fetch_default_model as fdm  # noqa: E402  (shared token tables + tokenizer fix)

SEED = 0
CFG = dict(
    vocab_size=151936,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=4096,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    hidden_act="silu",
    bos_token_id=151643,
    eos_token_id=151643,
    use_sliding_window=False,
)
# `--shape 0.5b`: Qwen2.5-Coder-0.5B's shape with random weights, for timing where the real
# weights cannot be carried (the lent GPU machine; see gpu_bench.sh).
SHAPES = {
    "tiny": CFG,
    "0.5b": dict(CFG, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, head_dim=64, max_position_embeddings=32768),
}
MARK_VERSION = "tiny-v4"  # v2: genai layouts built with prune_lm_head; v3: + logits_to_keep, like the default model; v4: + prefill graph
ATOL = 1e-4


def log(msg: str) -> None:
    print(f"[tiny] {msg}", flush=True)


# ---------------------------------------------------------------- HF model
def make_hf_model(cfg: dict = CFG):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(SEED)
    config = Qwen2Config(**cfg)
    config.rope_parameters = {"rope_type": "default", "rope_theta": cfg["rope_theta"]}
    model = Qwen2ForCausalLM(config).eval()
    # Re-initialise every tensor so biases/norms are not trivially 0/1 and attention is not
    # uniform: the comparison below then actually exercises each part of the graph.
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))
    model.config.use_cache = True
    return model


def hf_reference(model, prompt_ids: list[int]):
    """Logits of a prefill and of one decode step (greedy next token), plus the KV cache."""
    import torch

    ids = torch.tensor([prompt_ids], dtype=torch.int64)
    s = ids.shape[1]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                    position_ids=torch.arange(s)[None], use_cache=True)
        nxt = int(out.logits[0, -1].argmax())
        out2 = model(input_ids=torch.tensor([[nxt]]), attention_mask=torch.ones(1, s + 1, dtype=torch.int64),
                     position_ids=torch.tensor([[s]]), past_key_values=out.past_key_values, use_cache=True)
    return out.logits[0].numpy(), nxt, out2.logits[0].numpy()


# ---------------------------------------------------------------- Optimum-layout graph
def build_optimum_graph(model, path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = model.config
    H, NH, KVH, D = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim
    L, V, eps = c.num_hidden_layers, c.vocab_size, c.rms_norm_eps
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}

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


def ort_two_steps(model_path: Path, prompt_ids: list[int], nxt: int, kv: tuple[int, int, int]):
    """Prefill then one decode step with plain onnxruntime, feeding present -> past."""
    import numpy as np
    import onnxruntime as ort

    L, KVH, D = kv
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    keep_all = any(i.name == "logits_to_keep" for i in sess.get_overridable_initializers())
    out_names = [o.name for o in sess.get_outputs()]
    s = len(prompt_ids)

    def feeds(ids, pos0, total, past):
        f = {"input_ids": np.array([ids], np.int64),
             "attention_mask": np.ones((1, total), np.int64)}
        if "position_ids" in names:
            f["position_ids"] = np.arange(pos0, pos0 + len(ids), dtype=np.int64)[None]
        for i in range(L):
            for kind in ("key", "value"):
                f[f"past_key_values.{i}.{kind}"] = past[f"present.{i}.{kind}"]
        return f

    empty = {f"present.{i}.{k}": np.zeros((1, KVH, 0, D), np.float32) for i in range(L) for k in ("key", "value")}
    first = feeds(prompt_ids, 0, s, empty)
    if keep_all:  # every prompt position's logits, to compare them all
        first["logits_to_keep"] = np.array([s], np.int64)
    r1 = dict(zip(out_names, sess.run(None, first)))
    r2 = dict(zip(out_names, sess.run(None, feeds([nxt], s, s + 1, r1))))
    for i in range(L):
        for k in ("key", "value"):
            shp = r2[f"present.{i}.{k}"].shape
            if tuple(shp) != (1, KVH, s + 1, D):
                raise SystemExit(f"present.{i}.{k} after decode has shape {shp}, expected {(1, KVH, s + 1, D)}")
    return sess, r1["logits"][0], r2["logits"][0]


def genai_two_steps(model_dir: Path, prompt_ids: list[int], nxt: int):
    import numpy as np
    import onnxruntime_genai as og

    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt_ids) + 4, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(prompt_ids)
    l1 = np.array(gen.get_logits())[0].reshape(-1)
    gen.append_tokens([nxt])
    l2 = np.array(gen.get_logits())[0].reshape(-1)
    return l1, l2


def compare(label, got, want) -> float:
    import numpy as np

    got = np.asarray(got, np.float32).reshape(np.asarray(want).shape)
    d = float(np.max(np.abs(got - want)))
    log(f"{label}: max |diff| = {d:.2e} (max |logit| {float(np.max(np.abs(want))):.2f})")
    if not d <= ATOL:
        raise SystemExit(f"[tiny] {label}: logits differ by {d} > {ATOL}")
    return d


# ---------------------------------------------------------------- genai builder
def run_builder_in_process(builder_argv: list[str]) -> str | None:
    """``python -m onnxruntime_genai.models.builder ARGV`` without a second interpreter (saves the
    ~10 s of importing torch + transformers again). Returns the captured output on failure."""
    import contextlib
    import io
    import runpy

    buf = io.StringIO()
    saved = sys.argv
    sys.argv = ["builder", *builder_argv]
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__", alter_sys=False)
    except SystemExit as e:
        if e.code not in (0, None):
            return buf.getvalue()[-4000:] + f"\nexit {e.code}"
    except Exception as e:  # noqa: BLE001 - report whatever the builder raised
        import traceback

        return buf.getvalue()[-4000:] + "\n" + traceback.format_exc()
    finally:
        sys.argv = saved
    return None


# ---------------------------------------------------------------- main
def write_common(out: Path, tokenizer: Path, model, name: str) -> None:
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    fdm.fix_tokenizer_json(out / "tokenizer.json")
    fdm.check_tokenizer(out / "tokenizer.json")
    c = model.config
    doc = {
        "format": 1,
        "name": name,
        "family": fdm.FAMILY,
        "context_length": c.max_position_embeddings,
        "eos_token_ids": fdm.EOS_IDS,
        "stop_token_ids": fdm.STOP_IDS,
        "fim": {"prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
                "repo_name": "<|repo_name|>", "file_sep": "<|file_sep|>", "template": fdm.FIM_TEMPLATE},
        "kv": {"num_layers": c.num_hidden_layers, "num_kv_heads": c.num_key_value_heads, "head_dim": c.head_dim},
        "source": {"gguf_sha256": None, "converter": f"make_tiny_model.py random seed {SEED}"},
    }
    (out / "ghostline.json").write_text(json.dumps(doc, indent=2) + "\n")


def write_hf_dir(model, tokenizer: Path, hf: Path) -> None:
    model.save_pretrained(str(hf))
    shutil.copyfile(tokenizer, hf / "tokenizer.json")
    fdm.fix_tokenizer_json(hf / "tokenizer.json")
    (hf / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "model_max_length": model.config.max_position_embeddings}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layout", choices=["genai", "optimum", "genai-cuda-fp16", "genai-cuda-int4"], required=True,
                    help="genai-cuda-fp16 / genai-cuda-int4: the builder's CUDA exports (float16 KV and "
                         "logits), to test the server's f16 path on the CPU; their logits are not compared here")
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
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    t0 = time.perf_counter()

    from tokenizers import Tokenizer

    model = make_hf_model(SHAPES[args.shape])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = Tokenizer.from_file(str(args.tokenizer))
    prompt = fdm.FIM_TEMPLATE.format(prefix="def add(a, b):\n    ", suffix="\n")
    prompt_ids = tok.encode(prompt, add_special_tokens=False).ids
    ref1, nxt, ref2 = hf_reference(model, prompt_ids)
    kv = (model.config.num_hidden_layers, model.config.num_key_value_heads, model.config.head_dim)

    if args.layout == "optimum":
        build_optimum_graph(model, tmp / "model.onnx")
        model.config.save_pretrained(str(tmp))
    else:
        hf = tmp / "_hf"
        write_hf_dir(model, args.tokenizer, hf)
        precision, provider = {"genai-cuda-fp16": ("fp16", "cuda"), "genai-cuda-int4": ("int4", "cuda")}.get(args.layout, ("fp32", "cpu"))
        argv_b = ["-i", str(hf), "-o", str(tmp), "-p", precision, "-e", provider, "-c", str(tmp / "_cache")]
        # Pruned LM head (logits of the last position only), as fetch_default_model.py builds the
        # default model, so the tests run the server on the graph shape users get.
        argv_b += ["--extra_options", "prune_lm_head=true"]
        if precision == "int4":
            argv_b += ["is_symmetric=false"]
        err = run_builder_in_process(argv_b)
        if err:
            print(err, file=sys.stderr)
            print("[tiny] error: model builder failed", file=sys.stderr)
            return 1
        shutil.rmtree(hf)
        shutil.rmtree(tmp / "_cache", ignore_errors=True)
    write_common(tmp, args.tokenizer, model, "tiny-random-qwen2" if args.shape == "tiny" else f"random-qwen2-{args.shape}-shape")
    if args.layout != "optimum":
        fdm.add_logits_to_keep(tmp)
        # A prefill graph like the default model's, so the tests run the server's switch between
        # two graphs; these f32 weights have no MatMulNBits, so it is the same graph (CUDA
        # exports get none, as from fetch_default_model.py).
        fdm.add_prefill_graph(tmp, always=True)

    if args.layout.startswith("genai-cuda"):
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        (out / ".complete").write_text(stamp + "\n")
        log(f"wrote {out} ({args.layout}, not compared: CUDA export) in {time.perf_counter() - t0:.1f}s")
        return 0

    onnx_file = tmp / "model.onnx"
    if args.layout == "genai":
        onnx_file = tmp / json.loads((tmp / "genai_config.json").read_text())["model"]["decoder"]["filename"]
    sess, l1, l2 = ort_two_steps(onnx_file, prompt_ids, nxt, kv)
    compare("onnxruntime prefill", l1, ref1[-len(l1):])
    compare("onnxruntime decode ", l2, ref2[-1:])
    if args.layout == "genai":
        g1, g2 = genai_two_steps(tmp, prompt_ids, nxt)
        compare("genai prefill(last)", g1, ref1[-1])
        compare("genai decode       ", g2, ref2[-1])
    for line in describe(sess):
        log(line)

    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    (out / ".complete").write_text(stamp + "\n")
    log(f"wrote {out} ({args.layout}) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
