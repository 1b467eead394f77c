#!/usr/bin/env python3
"""A Qwen2 GGUF written as an ONNX decoder, keeping every quantized weight's values exactly.

numpy, ``gguf`` (ggml's own reader) and ``onnx`` only: no torch, no transformers, no second
quantization. Each GGML block is mapped onto ONNX Runtime's ``MatMulNBits`` so that
``scale · (q − zero_point) − min`` is, value for value, what ggml dequantizes:

| GGML type | block | value                       | MatMulNBits                          |
|-----------|-------|-----------------------------|--------------------------------------|
| Q4_0      | 32    | d·(q − 8)                   | 4 bits, scale d, zp 8                |
| Q4_1      | 32    | d·q + m                     | 4 bits, scale d, zp 0, min −m        |
| Q5_0      | 32    | d·(q − 16)                  | 8 bits, scale d, zp 16               |
| Q5_1      | 32    | d·q + m                     | 8 bits, scale d, zp 0, min −m        |
| Q8_0      | 32    | d·q (q signed)              | 8 bits, scale d, zp 128              |
| Q4_K      | 32 of 256 | (d·sc)·q − dmin·m       | 4 bits, scale d·sc, zp 0, min dmin·m |
| Q5_K      | 32 of 256 | (d·sc)·q − dmin·m       | 8 bits, scale d·sc, zp 0, min dmin·m |
| Q6_K      | 16 of 256 | (d·sc)·(q − 32)         | 8 bits, block 16, scale d·sc, zp 32  |
| F32/F16/BF16 | -  | as stored                   | a plain MatMul (float32)             |

A "min" (Q4_1, Q5_1, Q4_K, Q5_K) is not a zero point ONNX Runtime's fast CPU kernels take: a
float zero point (``dmin·m / (d·sc)``) runs MatMulNBits on a slow path (measured on this CPU,
K 896 × N 4864, one row: 14.3 ms against 0.26 ms with a uint8 zero point) and would round the
value once more. So the linear layer is written as ``x·(scale·q) − blocksum(x)·M``: the first
term is MatMulNBits with zero point 0, the second a small float MatMul of x's per-block sums
([.., K/32]) by the block minima ([K/32, N]). Both are exact rewrites of ``Σ x·w``.

Any other GGML type is dequantized by ggml's own reader and kept as a float32 MatMul (exact,
larger, slower; the converter says so).

The graph follows onnxruntime-genai's layout, which ghostline-serve loads: inputs ``input_ids``,
``attention_mask``, ``past_key_values.N.key/value`` [batch, kv_heads, past, head_dim] and
``logits_to_keep`` (default 1); outputs ``logits`` [batch, logits_to_keep, vocab] and
``present.N.key/value``; GroupQueryAttention with rotary embedding inside.

``precision="fp16"`` writes the CUDA variant instead: the same blocks dequantized (by ggml's
reader) to float16 dense MatMuls, float16 KV cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK_K = 256


# ---------------------------------------------------------------- GGUF
@dataclass
class Qwen2Config:
    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    context_length: int
    rope_theta: float
    rms_eps: float
    name: str


class Gguf:
    """A GGUF file's metadata and tensors (memory-mapped by ggml's reader)."""

    def __init__(self, path: Path):
        import gguf

        self.path = Path(path)
        self.reader = gguf.GGUFReader(str(path))
        self.tensors = {t.name: t for t in self.reader.tensors}

    def field(self, key: str, default=None):
        f = self.reader.fields.get(key)
        if f is None:
            return default
        return f.contents()

    def config(self) -> Qwen2Config:
        arch = self.field("general.architecture")
        if arch != "qwen2":
            raise ValueError(f"{self.path}: architecture {arch!r}, only qwen2 is supported")
        a = "qwen2."
        hidden = int(self.field(a + "embedding_length"))
        n_heads = int(self.field(a + "attention.head_count"))
        vocab = int(self.tensors["token_embd.weight"].shape[1])
        return Qwen2Config(
            n_layers=int(self.field(a + "block_count")),
            hidden=hidden,
            intermediate=int(self.field(a + "feed_forward_length")),
            n_heads=n_heads,
            n_kv_heads=int(self.field(a + "attention.head_count_kv", n_heads)),
            head_dim=int(self.field(a + "attention.key_length", hidden // n_heads)),
            vocab=vocab,
            context_length=int(self.field(a + "context_length", 32768)),
            rope_theta=float(self.field(a + "rope.freq_base", 10000.0)),
            rms_eps=float(self.field(a + "attention.layer_norm_rms_epsilon", 1e-6)),
            name=str(self.field("general.name", "")),
        )

    def type_name(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def dequantize(self, name: str) -> np.ndarray:
        """ggml's own dequantization, float32 [rows (N), cols (K)]."""
        from gguf import quants

        t = self.tensors[name]
        w = quants.dequantize(np.asarray(t.data), t.tensor_type)
        n_cols = int(t.shape[0])
        return np.asarray(w, np.float32).reshape(-1, n_cols)


# ---------------------------------------------------------------- blocks
@dataclass
class Blocks:
    """A weight [N rows, K cols] as ``scale · (codes − zp) − mins`` per block of ``block`` columns.

    codes uint8 [N, K] (one code a byte, unpacked); scale, mins float32 [N, K/block]; zp uint8
    [N, K/block]; mins None when the type has none."""

    bits: int
    block: int
    codes: np.ndarray
    scale: np.ndarray
    zp: np.ndarray
    mins: np.ndarray | None

    def values(self) -> np.ndarray:
        n, k = self.codes.shape
        nb = k // self.block
        q = self.codes.reshape(n, nb, self.block).astype(np.float32) - self.zp[..., None].astype(np.float32)
        w = self.scale[..., None] * q
        if self.mins is not None:
            w = w - self.mins[..., None]
        return w.reshape(n, k).astype(np.float32)


def _f16(b: np.ndarray) -> np.ndarray:
    """Two bytes (last axis) as float16 -> float32."""
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(np.float32)


def _blocks(raw: np.ndarray, n_rows: int, nbytes: int) -> np.ndarray:
    return np.asarray(raw, np.uint8).reshape(n_rows, -1, nbytes)


def decode_blocks(kind: str, raw: np.ndarray, n_rows: int) -> Blocks | None:
    """The integer codes and per-block scales of one GGML tensor, or None for an unmapped type."""
    if kind == "Q8_0":
        b = _blocks(raw, n_rows, 34)
        d = _f16(b[..., 0:2])
        codes = (b[..., 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return Blocks(8, 32, codes.reshape(n_rows, -1), d, np.full(d.shape, 128, np.uint8), None)
    if kind in ("Q4_0", "Q4_1"):
        size = 18 if kind == "Q4_0" else 20
        b = _blocks(raw, n_rows, size)
        d = _f16(b[..., 0:2])
        qs = b[..., size - 16:size]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
        if kind == "Q4_0":
            return Blocks(4, 32, codes.reshape(n_rows, -1), d, np.full(d.shape, 8, np.uint8), None)
        m = _f16(b[..., 2:4])
        return Blocks(4, 32, codes.reshape(n_rows, -1), d, np.zeros(d.shape, np.uint8), -m)
    if kind in ("Q5_0", "Q5_1"):
        size = 22 if kind == "Q5_0" else 24
        b = _blocks(raw, n_rows, size)
        d = _f16(b[..., 0:2])
        off = 2 if kind == "Q5_0" else 4
        qh = np.ascontiguousarray(b[..., off:off + 4]).view("<u4")  # [N, nb, 1]
        qs = b[..., off + 4:off + 20]
        j = np.arange(16, dtype=np.uint32)
        hi0 = ((qh >> j) & 1).astype(np.uint8) << 4
        hi1 = ((qh >> (j + 16)) & 1).astype(np.uint8) << 4
        codes = np.concatenate([(qs & 0x0F) | hi0, (qs >> 4) | hi1], axis=-1)
        if kind == "Q5_0":
            return Blocks(8, 32, codes.reshape(n_rows, -1), d, np.full(d.shape, 16, np.uint8), None)
        m = _f16(b[..., 2:4])
        return Blocks(8, 32, codes.reshape(n_rows, -1), d, np.zeros(d.shape, np.uint8), -m)
    if kind in ("Q4_K", "Q5_K"):
        size = 144 if kind == "Q4_K" else 176
        b = _blocks(raw, n_rows, size)
        d, dmin = _f16(b[..., 0:2]), _f16(b[..., 2:4])
        s = b[..., 4:16].astype(np.uint8)
        sc = np.empty(s.shape[:-1] + (8,), np.uint8)
        mn = np.empty_like(sc)
        sc[..., :4] = s[..., 0:4] & 63
        mn[..., :4] = s[..., 4:8] & 63
        sc[..., 4:] = (s[..., 8:12] & 0x0F) | ((s[..., 0:4] >> 6) << 4)
        mn[..., 4:] = (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)
        if kind == "Q4_K":
            qs = b[..., 16:144].reshape(*b.shape[:-1], 4, 32)
            codes = np.stack([qs & 0x0F, qs >> 4], axis=-2)  # [N, nsb, 4, 2, 32]
            bits = 4
        else:
            qh = b[..., 16:48]  # [N, nsb, 32]
            qs = b[..., 48:176].reshape(*b.shape[:-1], 4, 32)
            lo = np.stack([qs & 0x0F, qs >> 4], axis=-2)  # [N, nsb, 4, 2, 32]
            shift = np.arange(8, dtype=np.uint8).reshape(4, 2, 1)
            hi = ((qh[..., None, None, :] >> shift) & 1) << 4
            codes = lo | hi
            bits = 8
        scale = d[..., None] * sc.astype(np.float32)  # ggml: d1 = d * sc (float)
        mins = dmin[..., None] * mn.astype(np.float32)  # m1 = min * m
        scale = scale.reshape(n_rows, -1)
        return Blocks(bits, 32, codes.reshape(n_rows, -1).astype(np.uint8), scale,
                      np.zeros(scale.shape, np.uint8), mins.reshape(n_rows, -1))
    if kind == "Q6_K":
        b = _blocks(raw, n_rows, 210)
        ql = b[..., 0:128].reshape(*b.shape[:-1], 2, 64)
        qh = b[..., 128:192].reshape(*b.shape[:-1], 2, 32)
        sc = b[..., 192:208].view(np.int8).astype(np.float32)  # [N, nsb, 16]
        d = _f16(b[..., 208:210])
        q1 = (ql[..., 0:32] & 0x0F) | (((qh >> 0) & 3) << 4)
        q2 = (ql[..., 32:64] & 0x0F) | (((qh >> 2) & 3) << 4)
        q3 = (ql[..., 0:32] >> 4) | (((qh >> 4) & 3) << 4)
        q4 = (ql[..., 32:64] >> 4) | (((qh >> 6) & 3) << 4)
        codes = np.concatenate([q1, q2, q3, q4], axis=-1)  # [N, nsb, 2, 128]
        scale = d[..., None] * sc  # ggml: d * sc[is] (float), then * q
        scale = scale.reshape(n_rows, -1)
        return Blocks(8, 16, codes.reshape(n_rows, -1).astype(np.uint8), scale, np.full(scale.shape, 32, np.uint8), None)
    return None


def tensor_blocks(g: Gguf, name: str) -> Blocks | None:
    t = g.tensors[name]
    n_rows = int(np.prod([int(x) for x in t.shape[1:]]))
    return decode_blocks(t.tensor_type.name, np.asarray(t.data), n_rows)


# ---------------------------------------------------------------- graph
MS = "com.microsoft"


class GraphBuilder:
    def __init__(self, float_type: int):
        from onnx import TensorProto

        self.nodes: list = []
        self.inits: list = []
        self.n = 0
        self.ft = float_type
        self.np_ft = np.float16 if float_type == TensorProto.FLOAT16 else np.float32

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}/{self.n}"

    def init(self, name: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const(self, arr, prefix: str = "/const") -> str:
        return self.init(self.name(prefix), np.asarray(arr))

    def op(self, op: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", name: str | None = None,
           **attrs):
        from onnx import helper

        outs = outputs if isinstance(outputs, list) else [self.name(f"/{op}/out") for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name or self.name(f"/{op}"), domain=domain, **attrs))
        return outs[0] if len(outs) == 1 else outs


def _pack4(codes: np.ndarray) -> np.ndarray:
    """Two 4-bit codes a byte, the first in the low nibble (MatMulNBits' order)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


class Writer:
    """Writes the decoder from a Gguf, quantized (CPU) or float16 (CUDA)."""

    def __init__(self, g: Gguf, precision: str = "q", accuracy_level: int = 4, log=print, dense_head: bool = False):
        from onnx import TensorProto

        if precision not in ("q", "fp16", "fp32"):
            raise ValueError(precision)
        self.g = g
        self.cfg = g.config()
        self.precision = precision
        self.acc = accuracy_level
        self.log = log
        self.b = GraphBuilder(TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT)
        self.weight_mappings: dict[str, int] = {}
        # The LM head as a float32 MatMul of the dequantized values (same values, f32 compute):
        # for the tiny test model, whose MatMulNBits compute in f32 on a slow path.
        self.dense_head = dense_head

    # ---- pieces
    def linear(self, x: str, name: str, bias: str | None = None, dense: bool = False) -> str:
        b = self.b
        t = self.g.tensors[name]
        k, n = int(t.shape[0]), int(t.shape[1])
        kind = t.tensor_type.name
        blk = tensor_blocks(self.g, name) if self.precision == "q" and not dense else None
        if blk is None:
            w = self.g.dequantize(name).T.astype(b.np_ft)  # [K, N]
            y = b.op("MatMul", [x, b.init(f"{name}.kn", w)], name=f"{name}/MatMul")
            self.weight_mappings[f"{kind}->dense {'fp16' if b.np_ft == np.float16 else 'f32'}"] = \
                self.weight_mappings.get(f"{kind}->dense {'fp16' if b.np_ft == np.float16 else 'f32'}", 0) + 1
        else:
            nb = k // blk.block
            codes = blk.codes.reshape(n, nb, blk.block)
            packed = _pack4(codes) if blk.bits == 4 else codes
            zp = blk.zp
            if blk.bits == 4:
                if nb % 2:
                    zp = np.concatenate([zp, np.zeros((n, 1), np.uint8)], axis=1)
                zp = _pack4(zp)
            ins = [x, b.init(f"{name}.q", packed), b.init(f"{name}.scales", blk.scale.reshape(-1)),
                   b.init(f"{name}.zp", zp.reshape(-1))]
            y = b.op("MatMulNBits", ins, domain=MS, name=f"{name}/MatMulNBits", K=k, N=n, bits=blk.bits,
                     block_size=blk.block, accuracy_level=self.acc)
            if blk.mins is not None:
                # − Σ_blocks (Σ x over the block) · min: exact, and MatMulNBits keeps its fast path.
                parts = b.op("Reshape", [x, b.const(np.array([0, 0, nb, blk.block], np.int64))])
                sums = b.op("ReduceSum", [parts, b.const(np.array([-1], np.int64))], keepdims=0)
                corr = b.op("MatMul", [sums, b.init(f"{name}.mins", np.ascontiguousarray(blk.mins.T))])
                y = b.op("Sub", [y, corr])
            label = f"{kind}->MatMulNBits {blk.bits}-bit/{blk.block}" + (" + mins" if blk.mins is not None else "")
            self.weight_mappings[label] = self.weight_mappings.get(label, 0) + 1
        if bias is not None:
            y = b.op("Add", [y, b.init(bias, np.asarray(self.g.tensors[bias].data, np.float32).astype(b.np_ft))])
        return y

    def embedding(self, ids: str) -> str:
        """token_embd rows looked up as codes and scales, dequantized in the graph (exact)."""
        b = self.b
        name = "token_embd.weight"
        blk = tensor_blocks(self.g, name) if self.precision == "q" else None
        if blk is None:
            table = self.g.dequantize(name).astype(b.np_ft)
            return b.op("Gather", [b.init(name, table), ids], axis=0)
        v, k = blk.codes.shape
        nb = k // blk.block
        codes = b.op("Gather", [b.init(f"{name}.codes", blk.codes), ids], axis=0)  # [B,S,K] u8
        q = b.op("Cast", [codes], to=self.b.ft)
        q = b.op("Reshape", [q, b.const(np.array([0, 0, nb, blk.block], np.int64))])
        zp = b.op("Gather", [b.init(f"{name}.zpf", blk.zp.astype(np.float32)), ids], axis=0)
        sc = b.op("Gather", [b.init(f"{name}.scalesf", blk.scale.astype(np.float32)), ids], axis=0)
        ax = b.const(np.array([-1], np.int64))
        w = b.op("Mul", [b.op("Sub", [q, b.op("Unsqueeze", [zp, ax])]), b.op("Unsqueeze", [sc, ax])])
        if blk.mins is not None:
            mins = b.op("Gather", [b.init(f"{name}.minsf", blk.mins.astype(np.float32)), ids], axis=0)
            w = b.op("Sub", [w, b.op("Unsqueeze", [mins, ax])])
        self.weight_mappings[f"{self.g.type_name(name)}->embedding codes"] = 1
        return b.op("Reshape", [w, b.const(np.array([0, 0, k], np.int64))])

    def norm(self, x: str, weight: str) -> str:
        w = np.asarray(self.g.tensors[weight].data, np.float32).astype(self.b.np_ft)
        return self.b.op("SimplifiedLayerNormalization", [x, self.b.init(weight, w)], axis=-1,
                         epsilon=self.cfg.rms_eps, stash_type=1)

    # ---- whole graph
    def build(self):
        import onnx
        from onnx import TensorProto, helper

        c, b = self.cfg, self.b
        ft = b.ft
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
        ]
        outputs = [helper.make_tensor_value_info("logits", ft, ["batch_size", "logits_to_keep", c.vocab])]
        for i in range(c.n_layers):
            for kind in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", ft, ["batch_size", c.n_kv_heads, "past_sequence_length", c.head_dim]))
                outputs.append(helper.make_tensor_value_info(
                    f"present.{i}.{kind}", ft, ["batch_size", c.n_kv_heads, "total_sequence_length", c.head_dim]))
        inputs.append(helper.make_tensor_value_info("logits_to_keep", TensorProto.INT64, [1]))
        b.init("logits_to_keep", np.array([1], np.int64))

        # GroupQueryAttention's lengths: seqlens_k = (tokens in the mask) − 1 per row, and the
        # total length = the mask's width (onnxruntime-genai's convention).
        s = b.op("ReduceSum", ["attention_mask", b.const(np.array([1], np.int64))], keepdims=0)
        seqlens_k = b.op("Cast", [b.op("Sub", [s, b.const(np.array(1, np.int64))])], to=TensorProto.INT32)
        width = b.op("Gather", [b.op("Shape", ["attention_mask"]), b.const(np.array(1, np.int64))], axis=0)
        total = b.op("Cast", [width], to=TensorProto.INT32)
        inv = 1.0 / (c.rope_theta ** (np.arange(0, c.head_dim, 2, dtype=np.float64) / c.head_dim))
        ang = np.arange(c.context_length, dtype=np.float64)[:, None] * inv[None, :]
        cos = b.init("cos_cache", np.cos(ang).astype(b.np_ft))
        sin = b.init("sin_cache", np.sin(ang).astype(b.np_ft))

        h = self.embedding("input_ids")
        for i in range(c.n_layers):
            p = f"blk.{i}"
            x = self.norm(h, f"{p}.attn_norm.weight")
            q = self.linear(x, f"{p}.attn_q.weight", f"{p}.attn_q.bias")
            k = self.linear(x, f"{p}.attn_k.weight", f"{p}.attn_k.bias")
            v = self.linear(x, f"{p}.attn_v.weight", f"{p}.attn_v.bias")
            attn = b.op("GroupQueryAttention",
                        [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total, cos, sin],
                        [b.name(f"/{p}/attn/out"), f"present.{i}.key", f"present.{i}.value"], domain=MS,
                        name=f"/{p}/GroupQueryAttention", num_heads=c.n_heads, kv_num_heads=c.n_kv_heads,
                        do_rotary=1, rotary_interleaved=0, scale=float(1.0 / np.sqrt(c.head_dim)))[0]
            h = b.op("Add", [h, self.linear(attn, f"{p}.attn_output.weight")])
            x = self.norm(h, f"{p}.ffn_norm.weight")
            gate = self.linear(x, f"{p}.ffn_gate.weight")
            up = self.linear(x, f"{p}.ffn_up.weight")
            act = b.op("Mul", [b.op("Mul", [gate, b.op("Sigmoid", [gate])]), up])
            h = b.op("Add", [h, self.linear(act, f"{p}.ffn_down.weight")])
        h = self.norm(h, "output_norm.weight")
        # Only the last logits_to_keep positions reach the LM head (151,936 columns).
        starts = b.op("Neg", ["logits_to_keep"])
        h = b.op("Slice", [h, starts, b.const(np.array([np.iinfo(np.int64).max], np.int64)),
                           b.const(np.array([1], np.int64))])
        head = "output.weight" if "output.weight" in self.g.tensors else "token_embd.weight"  # tied
        y = self.linear(h, head, dense=self.dense_head)
        b.op("Identity", [y], ["logits"])

        graph = helper.make_graph(b.nodes, "ghostline_qwen2", inputs, outputs, initializer=b.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(MS, 1)],
                                  producer_name="ghostline gguf_onnx.py")
        model.ir_version = 10
        return model


def write_model(g: Gguf, out: Path, precision: str = "q", accuracy_level: int = 4, log=print,
                dense_head: bool = False) -> dict:
    """model.onnx + model.onnx.data + genai_config.json in ``out``. Returns the per-type counts."""
    import onnx

    w = Writer(g, precision, accuracy_level, log, dense_head)
    model = w.build()
    out.mkdir(parents=True, exist_ok=True)
    for f in ("model.onnx", "model.onnx.data"):
        (out / f).unlink(missing_ok=True)
    onnx.save_model(model, str(out / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)
    write_genai_config(out, w.cfg, g, precision)
    return w.weight_mappings


def write_genai_config(out: Path, c: Qwen2Config, g: Gguf, precision: str) -> None:
    """onnxruntime-genai's config (the server reads the decoder's file name from it; the
    reference benchmark runs onnxruntime-genai on the same graph)."""
    eos = int(g.field("tokenizer.ggml.eos_token_id", 151645))
    pad = int(g.field("tokenizer.ggml.padding_token_id", 151643))
    bos = int(g.field("tokenizer.ggml.bos_token_id", 151643))
    provider = [{"cuda": {}}] if precision == "fp16" else []
    doc = {
        "model": {
            "bos_token_id": bos, "context_length": c.context_length,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": provider},
                "filename": "model.onnx", "head_size": c.head_dim, "hidden_size": c.hidden,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
                "num_attention_heads": c.n_heads, "num_hidden_layers": c.n_layers,
                "num_key_value_heads": c.n_kv_heads,
            },
            "eos_token_id": [151643, eos] if eos != 151643 else [151643], "pad_token_id": pad,
            "type": "qwen2", "vocab_size": c.vocab,
        },
        "search": {"diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
                   "max_length": c.context_length, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
                   "num_return_sequences": 1, "past_present_share_buffer": False, "repetition_penalty": 1.0,
                   "temperature": 1.0, "top_k": 1, "top_p": 1.0},
    }
    (out / "genai_config.json").write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------- tokenizer
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


def write_tokenizer_json(g: Gguf, path: Path) -> None:
    """tokenizer.json (Hugging Face tokenizers) from the GGUF's own vocabulary and merges: byte-level
    BPE with Qwen2's pre-tokenizer; control (3) and user-defined (4) tokens added, control ones
    special; unused padding entries (5) left out, as in Qwen's own file."""
    if g.field("tokenizer.ggml.model") != "gpt2" or g.field("tokenizer.ggml.pre") != "qwen2":
        raise ValueError(f"{g.path}: tokenizer {g.field('tokenizer.ggml.model')}/{g.field('tokenizer.ggml.pre')}, "
                         "only gpt2/qwen2 (byte-level BPE) is supported")
    tokens = g.field("tokenizer.ggml.tokens")
    types = [int(t) for t in g.field("tokenizer.ggml.token_type")]
    merges = g.field("tokenizer.ggml.merges")
    vocab, added = {}, []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        if ty == 5:
            continue
        if ty in (3, 4):
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": ty == 3})
        vocab[tok] = i
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [m.split(" ", 1) for m in merges]},
    }
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------- reference forward (numpy)
def reference_logits(g: Gguf, ids: list[int]) -> np.ndarray:
    """Every position's logits of a prompt, computed in float64 with numpy from ggml's own
    dequantization: an independent check of the graph (slow; for small models)."""
    c = g.config()
    deq = lambda n: g.dequantize(n).astype(np.float64)  # noqa: E731
    vec = lambda n: np.asarray(g.tensors[n].data, np.float64)  # noqa: E731

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + c.rms_eps) * w

    s = len(ids)
    h = deq("token_embd.weight")[ids]
    inv = 1.0 / (c.rope_theta ** (np.arange(0, c.head_dim, 2, dtype=np.float64) / c.head_dim))
    ang = np.arange(s)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # [heads, S, D], non-interleaved halves
        x1, x2 = x[..., : c.head_dim // 2], x[..., c.head_dim // 2:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    mask = np.triu(np.full((s, s), -np.inf), 1)
    group = c.n_heads // c.n_kv_heads
    for i in range(c.n_layers):
        p = f"blk.{i}"
        x = rms(h, vec(f"{p}.attn_norm.weight"))
        q = x @ deq(f"{p}.attn_q.weight").T + vec(f"{p}.attn_q.bias")
        k = x @ deq(f"{p}.attn_k.weight").T + vec(f"{p}.attn_k.bias")
        v = x @ deq(f"{p}.attn_v.weight").T + vec(f"{p}.attn_v.bias")
        q = rope(q.reshape(s, c.n_heads, c.head_dim).transpose(1, 0, 2))
        k = rope(k.reshape(s, c.n_kv_heads, c.head_dim).transpose(1, 0, 2))
        v = v.reshape(s, c.n_kv_heads, c.head_dim).transpose(1, 0, 2)
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        sc = q @ k.transpose(0, 2, 1) / np.sqrt(c.head_dim) + mask
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        a = (sc / sc.sum(-1, keepdims=True)) @ v
        a = a.transpose(1, 0, 2).reshape(s, -1)
        h = h + a @ deq(f"{p}.attn_output.weight").T
        x = rms(h, vec(f"{p}.ffn_norm.weight"))
        gt, up = x @ deq(f"{p}.ffn_gate.weight").T, x @ deq(f"{p}.ffn_up.weight").T
        h = h + (gt / (1 + np.exp(-gt)) * up) @ deq(f"{p}.ffn_down.weight").T
    h = rms(h, vec("output_norm.weight"))
    head = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
    return h @ deq(head).T


def check_blocks_exact(g: Gguf) -> dict[str, float]:
    """For every quantized tensor: the values the graph's blocks hold minus ggml's dequantization.
    Returns the largest |difference| per GGML type (0.0 when kept exactly)."""
    worst: dict[str, float] = {}
    for name, t in g.tensors.items():
        blk = tensor_blocks(g, name)
        if blk is None:
            continue
        d = float(np.max(np.abs(blk.values() - g.dequantize(name))))
        kind = t.tensor_type.name
        worst[kind] = max(worst.get(kind, 0.0), d)
    return worst


def ort_session(path: Path, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_prefill(sess, cfg: Qwen2Config, ids: list[int], keep: int | None = None, kv_type=np.float32):
    """All (or the last ``keep``) positions' logits of a prompt from an empty cache, and the KV."""
    feeds = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
             "logits_to_keep": np.array([keep or len(ids)], np.int64)}
    for i in range(cfg.n_layers):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((1, cfg.n_kv_heads, 0, cfg.head_dim), kv_type)
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, feeds)))
    return out["logits"][0].astype(np.float32), out


def ort_greedy(sess, cfg: Qwen2Config, ids: list[int], n: int, stop: set[int] = frozenset(), kv_type=np.float32):
    """Greedy continuation with the KV cache fed back (prefill, then one token a step)."""
    logits, out = ort_prefill(sess, cfg, ids, keep=1, kv_type=kv_type)
    toks: list[int] = []
    total = len(ids)
    while len(toks) < n:
        t = int(np.argmax(logits[-1]))
        toks.append(t)
        if t in stop:
            break
        total += 1
        feeds = {"input_ids": np.array([[t]], np.int64), "attention_mask": np.ones((1, total), np.int64)}
        for i in range(cfg.n_layers):
            for kind in ("key", "value"):
                feeds[f"past_key_values.{i}.{kind}"] = out[f"present.{i}.{kind}"]
        names = [o.name for o in sess.get_outputs()]
        out = dict(zip(names, sess.run(None, feeds)))
        logits = out["logits"][0].astype(np.float32)
    return toks


if __name__ == "__main__":  # python gguf_onnx.py MODEL.gguf OUT_DIR [q|fp16]
    import sys

    gg = Gguf(Path(sys.argv[1]))
    counts = write_model(gg, Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "q")
    print(json.dumps(counts, indent=2))
