//! The ONNX decoder: one session, and a KV state per sequence that is fed back every step so the
//! prompt is computed once (prefill) and each new token costs one position (decode).

pub mod prefix_cache;
pub mod sampling;
pub mod stop;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, bail, Context, Result};
use ort::{
    environment::Environment,
    ep,
    session::{builder::GraphOptimizationLevel, Session, SessionInputValue},
    value::{DynTensor, DynValue, Tensor, TensorElementType, ValueType},
};
use serde::Serialize;

use crate::model::{KvDims, Layout, ModelConfig, ModelFiles, ModelTokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Cuda,
}

pub struct EngineOptions {
    pub ort_library: PathBuf,
    pub device: DeviceChoice,
    pub threads: usize,
}

/// Names and types of the graph's inputs and outputs, read from the session.
struct GraphIo {
    input_ids_type: TensorElementType,
    attention_mask_type: Option<TensorElementType>,
    position_ids_type: Option<TensorElementType>,
    past: Vec<(String, String)>,
    present: Vec<(String, String)>,
    kv_type: TensorElementType,
}

/// KV state of one sequence: for each layer, the key and value tensors ([batch, kv heads,
/// positions, head dim]) of every position so far. In place, the tensors have room for
/// `capacity` positions of which the first `len` are valid; otherwise they hold exactly `len`.
pub struct KvState {
    layers: Vec<(DynValue, DynValue)>,
    len: usize,
    capacity: usize,
}

impl KvState {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Memory held, for the prefix cache's budget.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|(k, v)| [k, v])
            .map(|t| match t.dtype() {
                ValueType::Tensor { ty, shape, .. } => {
                    let count = shape.iter().product::<i64>().max(0) as usize;
                    ty.byte_size(count).unwrap_or(count * 4)
                }
                _ => 0,
            })
            .sum()
    }

    /// A copy holding only the first `len` positions (tensors are [batch, heads, positions, dim]).
    pub fn truncated_copy(&self, len: usize) -> Result<KvState> {
        if len > self.len {
            bail!("cannot keep {len} of {} positions", self.len);
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for (k, v) in &self.layers {
            layers.push((truncate_positions(k, len)?, truncate_positions(v, len)?));
        }
        Ok(KvState { layers, len, capacity: len })
    }
}

fn truncate_positions(tensor: &DynValue, len: usize) -> Result<DynValue> {
    fn copy<T: Copy + ort::value::PrimitiveTensorElementType + std::fmt::Debug + 'static>(
        tensor: &DynValue,
        len: usize,
    ) -> Result<DynValue> {
        let (shape, data) = tensor.try_extract_tensor::<T>()?;
        let [b, h, positions, d] = [shape[0], shape[1], shape[2], shape[3]].map(|x| x as usize);
        let mut out = Vec::with_capacity(b * h * len * d);
        for_each_row(data, positions, len, d, |row| out.extend_from_slice(row));
        Ok(Tensor::from_array(([b, h, len, d], out))?.into_dyn())
    }
    match tensor.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, .. } => copy::<f32>(tensor, len),
        ValueType::Tensor { ty: TensorElementType::Float16, .. } => copy::<half::f16>(tensor, len),
        other => bail!("unsupported KV type {other:?}"),
    }
}

/// Calls `f` with the first `len` positions of each (batch, head) row of a KV tensor's data
/// whose rows hold `positions` positions of `dim` values.
fn for_each_row<T>(data: &[T], positions: usize, len: usize, dim: usize, mut f: impl FnMut(&[T])) {
    if positions * dim == 0 {
        return;
    }
    for row in data.chunks_exact(positions * dim) {
        f(&row[..len * dim]);
    }
}

pub struct Engine {
    session: Session,
    io: GraphIo,
    pub layout: Layout,
    pub device: Device,
    pub config: ModelConfig,
    pub tokenizer: Arc<ModelTokenizer>,
    kv: KvDims,
    /// GroupQueryAttention graphs (genai layout) update the KV cache in place when past and
    /// present are the same buffer, so no step copies the whole cache; standard-op graphs
    /// (Optimum layout) return a new, longer present each step.
    in_place_kv: bool,
    /// Reused buffer for the last position's logits.
    logits: Vec<f32>,
}

/// Loads the ONNX Runtime library once per process (ONNX Runtime allows one environment).
fn init_runtime(library: &Path) -> Result<Environment> {
    static ENV: std::sync::OnceLock<std::result::Result<Environment, String>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|e| {
            format!("cannot load ONNX Runtime from {}: {e} (set ORT_DYLIB_PATH or --ort-lib)", library.display())
        })?;
        builder.with_name("ghostline").build().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

impl Engine {
    pub fn load(files: &ModelFiles, options: &EngineOptions) -> Result<Self> {
        let env = init_runtime(&options.ort_library)?;
        let tokenizer = Arc::new(ModelTokenizer::load(&files.tokenizer, &files.config.fim)?);
        let (session, device) = build_session(&env, &files.onnx, options)?;
        let io = GraphIo::inspect(&session, files)?;
        let layout = files.layout_hint;
        if layout == Layout::Optimum && io.position_ids_type.is_none() {
            bail!(
                "{}: without genai_config.json this must be an Optimum export taking position_ids, \
                 and it does not; expected either an onnxruntime-genai export (genai_config.json beside it) \
                 or an Optimum export (found inputs: {})",
                files.onnx.display(),
                session.inputs().iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(Self {
            session,
            io,
            layout,
            device,
            config: files.config.clone(),
            tokenizer,
            kv: files.config.kv,
            in_place_kv: layout == Layout::Genai && std::env::var_os("GHOSTLINE_KV_CONCAT").is_none(),
            logits: Vec::new(),
        })
    }

    /// An empty sequence; `capacity` is how many positions it will need (used in place only).
    pub fn new_sequence(&self, capacity: usize) -> Result<KvState> {
        let capacity = if self.in_place_kv { capacity } else { 0 };
        let mut layers = Vec::with_capacity(self.kv.num_layers);
        for _ in 0..self.kv.num_layers {
            layers.push((self.kv_buffer(capacity)?, self.kv_buffer(capacity)?));
        }
        Ok(KvState { layers, len: 0, capacity })
    }

    /// A zeroed KV tensor with room for `positions`, allocated by ONNX Runtime so that it can be
    /// bound as an output.
    fn kv_buffer(&self, positions: usize) -> Result<DynValue> {
        let shape = [1i64, self.kv.num_kv_heads as i64, positions as i64, self.kv.head_dim as i64];
        let mut tensor = DynTensor::new(self.session.allocator(), self.io.kv_type, shape)?.into_dyn();
        match self.io.kv_type {
            TensorElementType::Float32 => tensor.try_extract_tensor_mut::<f32>()?.1.fill(0.0),
            TensorElementType::Float16 => tensor.try_extract_tensor_mut::<half::f16>()?.1.fill(half::f16::ZERO),
            other => bail!("unsupported KV type {other:?}"),
        }
        Ok(tensor)
    }

    /// Makes room for `needed` positions in place, copying the valid ones into larger buffers.
    fn reserve(&self, seq: &mut KvState, needed: usize) -> Result<()> {
        if seq.capacity >= needed && seq.layers.iter().all(|(k, _)| k.shape()[2] as usize == seq.capacity) {
            return Ok(());
        }
        let capacity = needed.max(seq.capacity + seq.capacity / 2);
        let mut layers = Vec::with_capacity(seq.layers.len());
        for (k, v) in &seq.layers {
            let mut k2 = self.kv_buffer(capacity)?;
            let mut v2 = self.kv_buffer(capacity)?;
            copy_positions(k, &mut k2, seq.len)?;
            copy_positions(v, &mut v2, seq.len)?;
            layers.push((k2, v2));
        }
        seq.layers = layers;
        seq.capacity = capacity;
        Ok(())
    }

    /// Runs `tokens` after the sequence's KV state and returns the logits of the last one.
    pub fn forward(&mut self, seq: &mut KvState, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            bail!("forward needs at least one token");
        }
        if self.in_place_kv {
            self.forward_in_place(seq, tokens)?;
        } else {
            self.forward_concat(seq, tokens)?;
        }
        Ok(&self.logits)
    }

    fn forward_in_place(&mut self, seq: &mut KvState, tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        let total = seq.len + n;
        self.reserve(seq, total)?;
        let mut binding = self.session.create_binding()?;
        binding.bind_input("input_ids", &int_tensor(self.io.input_ids_type, [1, n], tokens.iter().map(|&t| t as i64))?)?;
        if let Some(ty) = self.io.attention_mask_type {
            binding.bind_input("attention_mask", &int_tensor(ty, [1, total], std::iter::repeat_n(1, total))?)?;
        }
        if let Some(ty) = self.io.position_ids_type {
            binding.bind_input("position_ids", &int_tensor(ty, [1, n], (seq.len..total).map(|p| p as i64))?)?;
        }
        for ((k, v), ((past_k, past_v), (present_k, present_v))) in
            seq.layers.iter_mut().zip(self.io.past.iter().zip(&self.io.present))
        {
            // The same buffer as past and present: GroupQueryAttention appends in place.
            binding.bind_input(past_k.as_str(), &*k)?;
            binding.bind_input(past_v.as_str(), &*v)?;
            binding.bind_output(present_k.as_str(), &mut *k)?;
            binding.bind_output(present_v.as_str(), &mut *v)?;
        }
        binding.bind_output_to_device("logits", &ort::memory::MemoryInfo::default())?;
        let outputs = self.session.run_binding(&binding)?;
        let logits = outputs.get("logits").context("model did not return logits")?;
        copy_last_logits(logits, &mut self.logits)?;
        seq.len = total;
        Ok(())
    }

    fn forward_concat(&mut self, seq: &mut KvState, tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        let total = seq.len + n;
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(3 + 2 * self.kv.num_layers);
        inputs.push(("input_ids".into(), int_tensor(self.io.input_ids_type, [1, n], tokens.iter().map(|&t| t as i64))?.into()));
        if let Some(ty) = self.io.attention_mask_type {
            inputs.push(("attention_mask".into(), int_tensor(ty, [1, total], std::iter::repeat_n(1, total))?.into()));
        }
        if let Some(ty) = self.io.position_ids_type {
            inputs.push(("position_ids".into(), int_tensor(ty, [1, n], (seq.len..total).map(|p| p as i64))?.into()));
        }
        let past = std::mem::take(&mut seq.layers);
        for ((k, v), (k_name, v_name)) in past.into_iter().zip(&self.io.past) {
            inputs.push((k_name.clone(), k.into()));
            inputs.push((v_name.clone(), v.into()));
        }
        let mut outputs = self.session.run(inputs)?;
        let mut layers = Vec::with_capacity(self.kv.num_layers);
        for (k_name, v_name) in &self.io.present {
            let k = outputs.remove(k_name).with_context(|| format!("model did not return {k_name}"))?;
            let v = outputs.remove(v_name).with_context(|| format!("model did not return {v_name}"))?;
            layers.push((k, v));
        }
        seq.layers = layers;
        seq.len = total;
        seq.capacity = total;
        let logits = outputs.remove("logits").context("model did not return logits")?;
        copy_last_logits(&logits, &mut self.logits)
    }

    pub fn vocab_size(&self) -> usize {
        self.logits.len()
    }
}

fn int_tensor<const D: usize>(ty: TensorElementType, shape: [usize; D], values: impl Iterator<Item = i64>) -> Result<DynValue> {
    Ok(match ty {
        TensorElementType::Int64 => Tensor::from_array((shape, values.collect::<Vec<i64>>()))?.into_dyn(),
        TensorElementType::Int32 => Tensor::from_array((shape, values.map(|v| v as i32).collect::<Vec<i32>>()))?.into_dyn(),
        other => bail!("unsupported integer input type {other:?}"),
    })
}

/// The last position's row of `logits` ([batch, positions, vocab]), as f32.
fn copy_last_logits(logits: &DynValue, out: &mut Vec<f32>) -> Result<()> {
    let vocab = *logits.shape().last().context("logits have no shape")? as usize;
    out.clear();
    match logits.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, .. } => {
            let (_, data) = logits.try_extract_tensor::<f32>()?;
            out.extend_from_slice(&data[data.len() - vocab..]);
        }
        ValueType::Tensor { ty: TensorElementType::Float16, .. } => {
            let (_, data) = logits.try_extract_tensor::<half::f16>()?;
            out.extend(data[data.len() - vocab..].iter().map(|x| x.to_f32()));
        }
        other => bail!("unsupported logits type {other:?}"),
    }
    Ok(())
}

/// Copies the first `len` positions of `from` into `to` (same heads and head dim, any capacity).
fn copy_positions(from: &DynValue, to: &mut DynValue, len: usize) -> Result<()> {
    fn copy<T: Copy + ort::value::PrimitiveTensorElementType + std::fmt::Debug + 'static>(
        from: &DynValue,
        to: &mut DynValue,
        len: usize,
    ) -> Result<()> {
        let (shape, src) = from.try_extract_tensor::<T>()?;
        let (src_cap, d) = (shape[2] as usize, shape[3] as usize);
        let (to_shape, dst) = to.try_extract_tensor_mut::<T>()?;
        let mut dst_rows = dst.chunks_exact_mut(to_shape[2] as usize * d);
        for_each_row(src, src_cap, len, d, |row| {
            if let Some(dst_row) = dst_rows.next() {
                dst_row[..row.len()].copy_from_slice(row);
            }
        });
        Ok(())
    }
    match from.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, .. } => copy::<f32>(from, to, len),
        ValueType::Tensor { ty: TensorElementType::Float16, .. } => copy::<half::f16>(from, to, len),
        other => bail!("unsupported KV type {other:?}"),
    }
}

fn build_session(env: &Environment, onnx: &Path, options: &EngineOptions) -> Result<(Session, Device)> {
    let attempt = |cuda: bool| -> Result<Session> {
        let builder = Session::builder(env)
            .map_err(|e| anyhow!("{e}"))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| anyhow!("{e}"))?
            .with_intra_threads(options.threads.max(1))
            .map_err(|e| anyhow!("{e}"))?
            .with_inter_threads(1)
            .map_err(|e| anyhow!("{e}"))?;
        let mut builder = if cuda {
            builder
                .with_execution_providers([ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| anyhow!("{e}"))?
        } else {
            builder
        };
        builder.commit_from_file(onnx).map_err(|e| anyhow!("{}: {e}", onnx.display()))
    };
    match options.device {
        DeviceChoice::Cpu => Ok((attempt(false)?, Device::Cpu)),
        DeviceChoice::Cuda => Ok((attempt(true).context("CUDA was asked for (--device cuda) but failed")?, Device::Cuda)),
        DeviceChoice::Auto => match attempt(true) {
            Ok(session) => Ok((session, Device::Cuda)),
            Err(e) => {
                tracing::info!("CUDA execution provider unavailable ({e:#}); using the CPU");
                Ok((attempt(false)?, Device::Cpu))
            }
        },
    }
}

impl GraphIo {
    fn inspect(session: &Session, files: &ModelFiles) -> Result<Self> {
        let kv = files.config.kv;
        let input_type = |name: &str| {
            session.inputs().iter().find(|i| i.name() == name).and_then(|i| match i.dtype() {
                ValueType::Tensor { ty, .. } => Some(*ty),
                _ => None,
            })
        };
        let has_output = |name: &str| session.outputs().iter().any(|o| o.name() == name);
        let unknown = || {
            anyhow!(
                "{}: not a decoder with a KV cache this server understands. Expected inputs input_ids, \
                 attention_mask, past_key_values.N.key/value and outputs logits, present.N.key/value \
                 (onnxruntime-genai or Optimum layout); found inputs [{}] and outputs [{}]",
                files.onnx.display(),
                session.inputs().iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
                session.outputs().iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
            )
        };
        let input_ids_type = input_type("input_ids").ok_or_else(unknown)?;
        if !has_output("logits") {
            return Err(unknown());
        }
        let mut past = Vec::new();
        let mut present = Vec::new();
        for layer in 0..kv.num_layers {
            let names = (format!("past_key_values.{layer}.key"), format!("past_key_values.{layer}.value"));
            let out = (format!("present.{layer}.key"), format!("present.{layer}.value"));
            if input_type(&names.0).is_none() || input_type(&names.1).is_none() || !has_output(&out.0) || !has_output(&out.1) {
                return Err(unknown().context(format!("layer {layer} of {} (ghostline.json kv.num_layers)", kv.num_layers)));
            }
            past.push(names);
            present.push(out);
        }
        let extra_layer = format!("past_key_values.{}.key", kv.num_layers);
        if input_type(&extra_layer).is_some() {
            bail!("{}: graph has more layers than ghostline.json kv.num_layers = {}", files.onnx.display(), kv.num_layers);
        }
        let kv_type = input_type(&past[0].0).ok_or_else(unknown)?;
        if let Some(ValueType::Tensor { shape, .. }) = session.inputs().iter().find(|i| i.name() == past[0].0).map(|i| i.dtype()) {
            let dims: &[i64] = shape;
            if dims.len() != 4
                || (dims[1] > 0 && dims[1] as usize != kv.num_kv_heads)
                || (dims[3] > 0 && dims[3] as usize != kv.head_dim)
            {
                bail!(
                    "{}: KV input shape {dims:?} does not match ghostline.json kv ({} heads x {} dims)",
                    files.onnx.display(),
                    kv.num_kv_heads,
                    kv.head_dim
                );
            }
        }
        Ok(Self {
            input_ids_type,
            attention_mask_type: input_type("attention_mask"),
            position_ids_type: input_type("position_ids"),
            past,
            present,
            kv_type,
        })
    }
}
