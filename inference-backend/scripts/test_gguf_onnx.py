#!/usr/bin/env python3
"""gguf_onnx.py's block decoding against ggml's own dequantization, for every GGML type it maps.

    python -m unittest inference-backend/scripts/test_gguf_onnx.py

Random blocks of each type (random codes and scale bytes, float16 fields set to finite values)
are decoded into MatMulNBits' (codes, scale, zero point, min) and must give back, value for
value, what ``gguf.quants.dequantize`` gives. Then one MatMulNBits layer of each type is run by
ONNX Runtime with f32 compute against x·Wᵀ of ggml's values. The whole-model checks are
make_tiny_model.py's (a random GGUF through the graph against a float64 reference) and
fetch_default_model.py's self-check (every tensor of the real GGUF).
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_onnx  # noqa: E402
from make_tiny_model import BLOCK, random_blocks  # noqa: E402

TYPES = sorted(BLOCK)


def ggml_values(kind: str, raw: np.ndarray, cols: int) -> np.ndarray:
    from gguf import GGMLQuantizationType, quants

    return np.asarray(quants.dequantize(raw, GGMLQuantizationType[kind]), np.float32).reshape(-1, cols)


class BlocksExact(unittest.TestCase):
    def test_every_type_decodes_to_ggmls_values(self):
        rng = np.random.default_rng(7)
        for kind in TYPES:
            with self.subTest(kind=kind):
                rows, cols = 48, 512
                raw = random_blocks(rng, kind, rows, cols, 0.05)
                blk = gguf_onnx.decode_blocks(kind, raw, rows)
                self.assertIsNotNone(blk)
                want = ggml_values(kind, raw, cols)
                self.assertEqual(blk.codes.shape, (rows, cols))
                self.assertLess(int(blk.codes.max()), 1 << blk.bits)
                np.testing.assert_array_equal(blk.values(), want)

    def test_unmapped_type_is_left_to_the_dense_path(self):
        self.assertIsNone(gguf_onnx.decode_blocks("IQ4_NL", np.zeros((1, 18), np.uint8), 1))

    def test_a_wrong_code_is_seen(self):
        # The comparison above can fail: flip one code of a Q4_K block and it must.
        rng = np.random.default_rng(3)
        raw = random_blocks(rng, "Q4_K", 4, 256, 0.05)
        blk = gguf_onnx.decode_blocks("Q4_K", raw, 4)
        blk.codes[1, 37] ^= 1
        self.assertFalse(np.array_equal(blk.values(), ggml_values("Q4_K", raw, 256)))


class MatMulNBitsLayer(unittest.TestCase):
    """One linear layer per type through ONNX Runtime (accuracy_level 1: f32 compute)."""

    def run_layer(self, kind: str, rows: int, cols: int):
        import onnx
        from onnx import TensorProto, helper

        rng = np.random.default_rng(11)
        raw = random_blocks(rng, kind, rows, cols, 0.05)

        class FakeTensor:
            def __init__(self):
                self.shape = [cols, rows]
                self.data = raw
                self.tensor_type = type("T", (), {"name": kind})

        class FakeGguf:
            tensors = {"w": FakeTensor()}

            def type_name(self, name):
                return kind

            def dequantize(self, name):
                return ggml_values(kind, raw, cols)

        w = gguf_onnx.Writer.__new__(gguf_onnx.Writer)
        w.g, w.precision, w.acc, w.weight_mappings = FakeGguf(), "q", 1, {}
        w.b = gguf_onnx.GraphBuilder(TensorProto.FLOAT)
        y = w.linear("x", "w")
        w.b.op("Identity", [y], ["y"])
        graph = helper.make_graph(w.b.nodes, "layer",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "s", cols])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "s", rows])],
                                  initializer=w.b.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(gguf_onnx.MS, 1)])
        model.ir_version = 10
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        x = rng.standard_normal((1, 5, cols)).astype(np.float32)
        got = sess.run(None, {"x": x})[0]
        want = x.astype(np.float64) @ ggml_values(kind, raw, cols).T.astype(np.float64)
        return got, want, w.weight_mappings

    def test_each_type_multiplies_like_ggmls_values(self):
        for kind in TYPES:
            with self.subTest(kind=kind):
                got, want, kept = self.run_layer(kind, 64, 512)
                self.assertTrue(any("MatMulNBits" in k for k in kept), kept)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max()))


if __name__ == "__main__":
    unittest.main()
