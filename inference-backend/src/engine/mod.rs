//! The ONNX decoder: one session, and a KV state per sequence that is fed back every step so the
//! prompt is computed once (prefill) and each new token costs one position (decode).

pub mod batch;
pub mod draft;
pub mod prefix_cache;
pub mod sampling;
pub mod stop;

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, bail, Context, Result};
use ort::{
    environment::{Environment, GlobalThreadPoolOptions},
    ep,
    memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType},
    session::{builder::GraphOptimizationLevel, IoBinding, Session, SessionInputValue},
    value::{DynTensor, DynTensorValueType, DynValue, Tensor, TensorElementType, ValueType},
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
    /// CUDA only: let the CUDA execution provider capture and replay CUDA graphs (see
    /// `batch.rs` for the fixed-shape decode step this needs).
    pub cuda_graph: bool,
    /// Rows and positions of the fixed-shape decode batch used with CUDA graphs: `--max-active`
    /// and the context length.
    pub fixed_batch: (usize, usize),
    /// CPU only: load the model's prefill graph (ghostline.json `prefill_onnx`) when it has one.
    pub prefill_graph: bool,
    /// Read the weights files into the process's own memory (the default) rather than let
    /// ONNX Runtime map them: a mapped file truncated or rewritten in place under a running
    /// server (a model preparation re-run into its directory) killed it with SIGBUS.
    pub weights_in_memory: bool,
}

/// Passes of at least this many tokens go to the prefill graph: where the two break even on the
/// default model (2 AVX2 cores, median of 5, f32 against int8): 64 tokens 460 / 464 ms, 128:
/// 789 / 920, 256: 1,489 / 1,627, 512: 3,103 / 3,306; 4 tokens after 256: 128 / 40 ms. f32
/// dequantizes the weights on every call, which only pays off over many rows.
pub const PREFILL_GRAPH_MIN_TOKENS: usize = 64;

/// Names and types of the graph's inputs and outputs, read from the session.
struct GraphIo {
    input_ids_type: TensorElementType,
    attention_mask_type: Option<TensorElementType>,
    position_ids_type: Option<TensorElementType>,
    past: Vec<(String, String)>,
    present: Vec<(String, String)>,
    kv_type: TensorElementType,
    /// `logits_to_keep` (an overridable initializer, default 1): how many last positions get
    /// logits. Graphs whose pruned LM head takes it (fetch_default_model.py adds it) can check a
    /// drafted continuation in one pass; without it only the last position has logits.
    logits_to_keep: Option<TensorElementType>,
}

/// KV state of one sequence: for each layer, the key and value tensors ([1, kv heads,
/// positions, head dim]) of every position so far. In place, the tensors have room for
/// `capacity` positions of which the first `len` are valid; otherwise they hold exactly `len`.
/// The tensors live where the engine keeps KV (host memory, or CUDA device memory when the CUDA
/// execution provider runs the graph); an empty state (no layers) stands for a sequence whose KV
/// currently lives in the decode batch.
#[derive(Default)]
pub struct KvState {
    layers: Vec<(DynTensor, DynTensor)>,
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
            .map(tensor_bytes)
            .sum()
    }

    /// Whether every tensor is one row with room for `positions` (in place: `capacity` of them).
    fn has_room_for(&self, positions: usize) -> bool {
        self.capacity >= positions
            && self.layers.iter().all(|(k, v)| {
                [k, v]
                    .iter()
                    .all(|t| t.shape()[0] == 1 && t.shape()[2] as usize == self.capacity)
            })
    }

    /// A copy holding only the first `len` positions, on the same device as this state.
    pub fn truncated_copy(&self, len: usize) -> Result<KvState> {
        if len > self.len {
            bail!("cannot keep {len} of {} positions", self.len);
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for (k, v) in &self.layers {
            layers.push((truncate_positions(k, len)?, truncate_positions(v, len)?));
        }
        Ok(KvState {
            layers,
            len,
            capacity: len,
        })
    }
}

fn tensor_bytes(t: &DynTensor) -> usize {
    match t.dtype() {
        ValueType::Tensor { ty, shape, .. } => {
            let count = shape.iter().product::<i64>().max(0) as usize;
            ty.byte_size(count).unwrap_or(count * 4)
        }
        _ => 0,
    }
}

/// The tensor itself when the CPU can read it, else a host copy (CUDA device memory). ort
/// rc.15 has no device-to-device copy of part of a tensor (`Value::copy_into` copies whole
/// tensors of equal shape, through a one-node identity session), so KV rows are moved on the
/// host: one download and one upload per tensor, paid when a sequence's KV changes buffers
/// (growth, batch join or leave, prefix-cache copy), never per decode step.
fn on_host(t: &DynTensor) -> Result<Cow<'_, DynTensor>> {
    if t.memory_info().is_cpu_accessible() {
        Ok(Cow::Borrowed(t))
    } else {
        Ok(Cow::Owned(t.to(AllocationDevice::CPU, 0)?))
    }
}

/// A zeroed host tensor [rows, heads, positions, dim] shaped like `like` (same type, heads, dim).
fn host_kv_like(like: &DynTensor, rows: usize, positions: usize) -> Result<DynTensor> {
    let shape = like.shape();
    let ty = match like.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => bail!("KV is not a tensor: {other:?}"),
    };
    Ok(DynTensor::new(
        &Allocator::default(),
        ty,
        [rows as i64, shape[1], positions as i64, shape[3]],
    )?)
}

fn truncate_positions(tensor: &DynTensor, len: usize) -> Result<DynTensor> {
    let src = on_host(tensor)?;
    let mut out = host_kv_like(&src, 1, len)?;
    copy_row(&src, 0, &mut out, 0, len)?;
    let info = tensor.memory_info();
    if info.is_cpu_accessible() {
        Ok(out)
    } else {
        Ok(out.to(info.allocation_device(), info.device_id())?)
    }
}

/// Copies the first `len` positions of every head of row `from` of `src` into row `to` of `dst`
/// (host tensors [rows, heads, capacity, dim]; the two may differ in rows and capacity).
fn copy_row(
    src: &DynTensor,
    from: usize,
    dst: &mut DynTensor,
    to: usize,
    len: usize,
) -> Result<()> {
    fn copy<T: Copy + ort::value::PrimitiveTensorElementType + std::fmt::Debug + 'static>(
        src: &DynTensor,
        from: usize,
        dst: &mut DynTensor,
        to: usize,
        len: usize,
    ) -> Result<()> {
        let (shape, src) = src.try_extract_tensor::<T>()?;
        let [heads, src_cap, dim] = [shape[1], shape[2], shape[3]].map(|x| x as usize);
        let (dst_shape, dst) = dst.try_extract_tensor_mut::<T>()?;
        let dst_cap = dst_shape[2] as usize;
        if len > src_cap
            || len > dst_cap
            || dst_shape[1] as usize != heads
            || dst_shape[3] as usize != dim
        {
            bail!("KV row copy of {len} positions from {shape:?} into {dst_shape:?}");
        }
        for h in 0..heads {
            let s = ((from * heads + h) * src_cap) * dim;
            let d = ((to * heads + h) * dst_cap) * dim;
            dst[d..d + len * dim].copy_from_slice(&src[s..s + len * dim]);
        }
        Ok(())
    }
    match src.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            ..
        } => copy::<f32>(src, from, dst, to, len),
        ValueType::Tensor {
            ty: TensorElementType::Float16,
            ..
        } => copy::<half::f16>(src, from, dst, to, len),
        other => bail!("unsupported KV type {other:?}"),
    }
}

pub struct Engine {
    session: Session,
    /// CPU only: the prefill graph, the same weights with `MatMulNBits` computing in f32
    /// (`accuracy_level` 1) instead of int8; faster for passes of many tokens on CPUs without
    /// int8 dot-product instructions (and more exact), slower for a few. Reads and writes the
    /// same KV buffers as `session`, so a sequence moves between the two freely.
    prefill_session: Option<Session>,
    /// Tokens run on `prefill_session` so far (the `ghostline_prefill_graph_tokens_total` metric).
    prefill_graph_tokens: u64,
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
    /// Where in-place KV buffers are allocated: CUDA device memory when the CUDA execution
    /// provider runs the graph (so GroupQueryAttention reads and writes them without a host
    /// round trip each step), else `None`: the session's CPU allocator.
    device_allocator: Option<Allocator>,
    /// Fixed-shape decode batch (CUDA graphs), when on; see `batch.rs`.
    fixed: Option<batch::FixedShape>,
    /// Reused buffer for the last position's logits (one row per sequence of a batch step).
    logits: Vec<f32>,
}

/// Loads the ONNX Runtime library once per process (ONNX Runtime allows one environment), with
/// one global thread pool of `threads` intra-op threads shared by every session: the decode and
/// prefill sessions run one after the other, and two pools would each spin threads on the same
/// cores. The first call's `threads` wins.
fn init_runtime(library: &Path, threads: usize) -> Result<Environment> {
    static ENV: std::sync::OnceLock<std::result::Result<Environment, String>> =
        std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e} (set ORT_DYLIB_PATH or --ort-lib)",
                library.display()
            )
        })?;
        let pool = GlobalThreadPoolOptions::default()
            .with_intra_threads(threads.max(1))
            .and_then(|pool| pool.with_inter_threads(1))
            .map_err(|e| e.to_string())?;
        builder
            .with_name("ghostline")
            .with_global_thread_pool(pool)
            .build()
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

impl Engine {
    pub fn load(files: &ModelFiles, options: &EngineOptions) -> Result<Self> {
        let env = init_runtime(&options.ort_library, options.threads)?;
        let tokenizer = Arc::new(ModelTokenizer::load(&files.tokenizer, &files.config.fim)?);
        // Token healing looks every token's text up; built here, not in a request.
        let started = std::time::Instant::now();
        let vocab = tokenizer.token_texts().len();
        tracing::debug!(
            vocab,
            "token texts in {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        let weights = if options.weights_in_memory {
            let mut graphs = vec![files.onnx.as_path()];
            graphs.extend(files.prefill_onnx.as_deref());
            WeightsInMemory::read(&files.dir, &graphs)?
        } else {
            WeightsInMemory::default()
        };
        let (session, device) =
            build_session(&env, &files.onnx, options.device, options, &weights)?;
        let io = GraphIo::inspect(&session, files)?;
        let prefill_session = match &files.prefill_onnx {
            Some(path) if options.prefill_graph && device == Device::Cpu => {
                let (prefill, _) = build_session(&env, path, DeviceChoice::Cpu, options, &weights)?;
                let names = |s: &Session| {
                    (
                        s.inputs()
                            .iter()
                            .map(|i| i.name().to_owned())
                            .collect::<Vec<_>>(),
                        s.outputs()
                            .iter()
                            .map(|o| o.name().to_owned())
                            .collect::<Vec<_>>(),
                    )
                };
                if names(&prefill) != names(&session) {
                    bail!(
                        "{}: the prefill graph's inputs and outputs differ from {}'s",
                        path.display(),
                        files.onnx.display()
                    );
                }
                Some(prefill)
            }
            _ => None,
        };
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
        let in_place_kv =
            layout == Layout::Genai && std::env::var_os("GHOSTLINE_KV_CONCAT").is_none();
        let device_allocator = if device == Device::Cuda && in_place_kv {
            let info = MemoryInfo::new(
                AllocationDevice::CUDA,
                0,
                AllocatorType::Device,
                MemoryType::Default,
            )?;
            Some(
                Allocator::new(&session, info)
                    .context("cannot create a CUDA allocator for the KV cache")?,
            )
        } else {
            None
        };
        let fixed = batch::FixedShape::choose(options, device, in_place_kv)?;
        Ok(Self {
            session,
            prefill_session,
            prefill_graph_tokens: 0,
            io,
            layout,
            device,
            config: files.config.clone(),
            tokenizer,
            kv: files.config.kv,
            in_place_kv,
            device_allocator,
            fixed,
            logits: Vec::new(),
        })
    }

    /// Whether decode steps of several sequences can run as one batch: GroupQueryAttention
    /// graphs take per-row sequence lengths (from the attention mask's row sums) over a shared
    /// right-padded KV buffer. The Optimum (concatenating) layout cannot: its attention takes
    /// the past length from the past tensor's shape, the same for every row, so rows of
    /// different lengths would need left padding and a `present` copy of the whole batch each
    /// step; it stays on the interleaved batch-1 path.
    pub fn supports_batching(&self) -> bool {
        self.in_place_kv
    }

    /// Whether passes of many tokens run on the prefill graph.
    pub fn has_prefill_graph(&self) -> bool {
        self.prefill_session.is_some()
    }

    /// Tokens run on the prefill graph since the engine loaded.
    pub fn prefill_graph_tokens(&self) -> u64 {
        self.prefill_graph_tokens
    }

    /// An empty sequence; `capacity` is how many positions it will need (used in place only).
    pub fn new_sequence(&self, capacity: usize) -> Result<KvState> {
        let capacity = if self.in_place_kv { capacity } else { 0 };
        let mut layers = Vec::with_capacity(self.kv.num_layers);
        for _ in 0..self.kv.num_layers {
            layers.push((self.kv_buffer(1, capacity)?, self.kv_buffer(1, capacity)?));
        }
        Ok(KvState {
            layers,
            len: 0,
            capacity,
        })
    }

    /// A KV tensor [rows, heads, positions, dim] allocated through ONNX Runtime (so that it can
    /// be bound as an output) where the engine keeps KV. Host memory comes zeroed (ort zeroes
    /// what the CPU can reach); CUDA memory is left as allocated, which is safe because
    /// GroupQueryAttention reads only the first seqlens_k + 1 positions of each row.
    fn kv_buffer(&self, rows: usize, positions: usize) -> Result<DynTensor> {
        let shape = [
            rows as i64,
            self.kv.num_kv_heads as i64,
            positions as i64,
            self.kv.head_dim as i64,
        ];
        let allocator = self
            .device_allocator
            .as_ref()
            .unwrap_or(self.session.allocator());
        Ok(DynTensor::new(allocator, self.io.kv_type, shape)?)
    }

    /// A KV tensor [rows, heads, positions, dim] where the engine keeps KV, filled on the host by
    /// `fill` (given a zeroed host tensor of that shape); on CUDA that is one upload.
    fn kv_filled(
        &self,
        rows: usize,
        positions: usize,
        fill: impl FnOnce(&mut DynTensor) -> Result<()>,
    ) -> Result<DynTensor> {
        if self.device_allocator.is_none() {
            let mut tensor = self.kv_buffer(rows, positions)?;
            fill(&mut tensor)?;
            return Ok(tensor);
        }
        let shape = [
            rows as i64,
            self.kv.num_kv_heads as i64,
            positions as i64,
            self.kv.head_dim as i64,
        ];
        let mut host = DynTensor::new(&Allocator::default(), self.io.kv_type, shape)?;
        fill(&mut host)?;
        let mut device = self.kv_buffer(rows, positions)?;
        host.copy_into(&mut device)?;
        Ok(device)
    }

    /// Makes room for `positions` in a sequence's own KV buffers (in place only; the
    /// concatenating layout's past is always exactly its length).
    pub fn reserve_for(&self, seq: &mut KvState, positions: usize) -> Result<()> {
        if self.in_place_kv && seq.layers.len() == self.kv.num_layers {
            self.reserve(seq, positions)?;
        }
        Ok(())
    }

    /// Makes room for `needed` positions in place, copying the valid ones into larger buffers.
    fn reserve(&self, seq: &mut KvState, needed: usize) -> Result<()> {
        if seq.has_room_for(needed) {
            return Ok(());
        }
        // Grown by half for the next keystroke's longer prompt, but never past the model's
        // context: GroupQueryAttention refuses a buffer longer than its rotary cache (`cos_cache
        // dimension 0 shall not be less than total_sequence_length`).
        let grown = (seq.capacity + seq.capacity / 2).min(self.config.context_length);
        let capacity = needed.max(grown);
        let mut layers = Vec::with_capacity(seq.layers.len());
        for (k, v) in &seq.layers {
            let (k, v) = (on_host(k)?, on_host(v)?);
            let k2 = self.kv_filled(1, capacity, |dst| copy_row(&k, 0, dst, 0, seq.len))?;
            let v2 = self.kv_filled(1, capacity, |dst| copy_row(&v, 0, dst, 0, seq.len))?;
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
        if seq.layers.len() != self.kv.num_layers {
            bail!("sequence has no KV state of its own (it is in the decode batch)");
        }
        if self.in_place_kv {
            self.forward_in_place(seq, tokens)?;
        } else {
            self.forward_concat(seq, tokens)?;
        }
        if takes_prefill_graph(&self.prefill_session, tokens.len()) {
            self.prefill_graph_tokens += tokens.len() as u64;
        }
        Ok(&self.logits)
    }

    fn forward_in_place(&mut self, seq: &mut KvState, tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        let total = seq.len + n;
        self.reserve(seq, total)?;
        let session = session_for(&mut self.session, &mut self.prefill_session, n);
        let mut binding = session.create_binding()?;
        binding.bind_input(
            "input_ids",
            &int_tensor(
                self.io.input_ids_type,
                [1, n],
                tokens.iter().map(|&t| t as i64),
            )?,
        )?;
        if let Some(ty) = self.io.attention_mask_type {
            binding.bind_input(
                "attention_mask",
                &int_tensor(ty, [1, total], std::iter::repeat_n(1, total))?,
            )?;
        }
        if let Some(ty) = self.io.position_ids_type {
            binding.bind_input(
                "position_ids",
                &int_tensor(ty, [1, n], (seq.len..total).map(|p| p as i64))?,
            )?;
        }
        self.io.bind_kv_in_place(&mut binding, &mut seq.layers)?;
        // Logits come back to host memory (on CUDA, ONNX Runtime copies them out after the run).
        binding.bind_output_to_device("logits", &MemoryInfo::default())?;
        let outputs = match self.fixed.as_ref().and_then(|f| f.no_graph.as_ref()) {
            // With CUDA graphs on, only the fixed-shape decode step may be captured.
            Some(options) => session.run_binding_with_options(&binding, options)?,
            None => session.run_binding(&binding)?,
        };
        let logits = outputs
            .get("logits")
            .context("model did not return logits")?;
        copy_last_logits(logits, 1, 1, &mut self.logits)?;
        seq.len = total;
        Ok(())
    }

    fn forward_concat(&mut self, seq: &mut KvState, tokens: &[u32]) -> Result<()> {
        let n = tokens.len();
        let total = seq.len + n;
        let mut inputs: Vec<(String, SessionInputValue<'_>)> =
            Vec::with_capacity(3 + 2 * self.kv.num_layers);
        inputs.push((
            "input_ids".into(),
            int_tensor(
                self.io.input_ids_type,
                [1, n],
                tokens.iter().map(|&t| t as i64),
            )?
            .into(),
        ));
        if let Some(ty) = self.io.attention_mask_type {
            inputs.push((
                "attention_mask".into(),
                int_tensor(ty, [1, total], std::iter::repeat_n(1, total))?.into(),
            ));
        }
        if let Some(ty) = self.io.position_ids_type {
            inputs.push((
                "position_ids".into(),
                int_tensor(ty, [1, n], (seq.len..total).map(|p| p as i64))?.into(),
            ));
        }
        let past = std::mem::take(&mut seq.layers);
        for ((k, v), (k_name, v_name)) in past.into_iter().zip(&self.io.past) {
            inputs.push((k_name.clone(), k.into_dyn().into()));
            inputs.push((v_name.clone(), v.into_dyn().into()));
        }
        let mut outputs =
            session_for(&mut self.session, &mut self.prefill_session, n).run(inputs)?;
        let mut layers = Vec::with_capacity(self.kv.num_layers);
        for (k_name, v_name) in &self.io.present {
            let k = outputs
                .remove(k_name)
                .with_context(|| format!("model did not return {k_name}"))?;
            let v = outputs
                .remove(v_name)
                .with_context(|| format!("model did not return {v_name}"))?;
            layers.push((
                k.downcast::<DynTensorValueType>()?,
                v.downcast::<DynTensorValueType>()?,
            ));
        }
        seq.layers = layers;
        seq.len = total;
        seq.capacity = total;
        let logits = outputs
            .remove("logits")
            .context("model did not return logits")?;
        copy_last_logits(&logits, 1, 1, &mut self.logits)
    }

    pub fn vocab_size(&self) -> usize {
        self.logits.len()
    }
}

/// The session for a batch-1 pass of `tokens` tokens (fields, not `&self`, so the logits
/// buffer stays writable while the run's outputs are borrowed).
fn session_for<'a>(
    session: &'a mut Session,
    prefill: &'a mut Option<Session>,
    tokens: usize,
) -> &'a mut Session {
    if takes_prefill_graph(prefill, tokens) {
        if let Some(prefill) = prefill {
            return prefill;
        }
    }
    session
}

/// Whether a batch-1 pass of `tokens` tokens runs on the prefill graph.
fn takes_prefill_graph(prefill: &Option<Session>, tokens: usize) -> bool {
    prefill.is_some() && tokens >= PREFILL_GRAPH_MIN_TOKENS
}

fn int_tensor<const D: usize>(
    ty: TensorElementType,
    shape: [usize; D],
    values: impl Iterator<Item = i64>,
) -> Result<DynValue> {
    Ok(match ty {
        TensorElementType::Int64 => {
            Tensor::from_array((shape, values.collect::<Vec<i64>>()))?.into_dyn()
        }
        TensorElementType::Int32 => {
            Tensor::from_array((shape, values.map(|v| v as i32).collect::<Vec<i32>>()))?.into_dyn()
        }
        other => bail!("unsupported integer input type {other:?}"),
    })
}

/// The logits of the last `positions` positions of each of the `rows` rows of `logits` ([rows,
/// positions kept by the graph, vocab]), as f32, position after position, row after row.
fn copy_last_logits<V: ort::value::TensorValueTypeMarker + ?Sized>(
    logits: &ort::value::Value<V>,
    rows: usize,
    positions: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    fn copy<
        T: Copy + ort::value::PrimitiveTensorElementType + std::fmt::Debug + 'static,
        V: ort::value::TensorValueTypeMarker + ?Sized,
    >(
        logits: &ort::value::Value<V>,
        rows: usize,
        positions: usize,
        out: &mut Vec<f32>,
        to_f32: impl Fn(T) -> f32,
    ) -> Result<()> {
        let (shape, data) = logits.try_extract_tensor::<T>()?;
        if shape.len() != 3 || shape[0] as usize != rows || (shape[1] as usize) < positions {
            bail!("logits shape {shape:?}, expected {rows} rows of at least {positions} positions");
        }
        let row = data.len() / rows;
        let wanted = positions * shape[2] as usize;
        for r in 0..rows {
            let last = &data[(r + 1) * row - wanted..(r + 1) * row];
            out.extend(last.iter().map(|&x| to_f32(x)));
        }
        Ok(())
    }
    out.clear();
    match logits.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            ..
        } => copy::<f32, V>(logits, rows, positions, out, |x| x),
        ValueType::Tensor {
            ty: TensorElementType::Float16,
            ..
        } => copy::<half::f16, V>(logits, rows, positions, out, |x| x.to_f32()),
        other => bail!("unsupported logits type {other:?}"),
    }
}

/// The external-data files of the graphs, read once into memory and shared by their sessions
/// (the prefill graph names the same weights file as the main one).
#[derive(Default)]
struct WeightsInMemory(Vec<(String, Arc<[u8]>)>);

impl WeightsInMemory {
    fn read(dir: &Path, graphs: &[&Path]) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut files: Vec<(String, Arc<[u8]>)> = Vec::new();
        for graph in graphs {
            for name in crate::model::external_data_locations(graph)? {
                if files.iter().any(|(known, _)| *known == name) {
                    continue;
                }
                let path = dir.join(&name);
                let bytes = read_shared(&path)
                    .with_context(|| format!("cannot read the weights file {}", path.display()))?;
                files.push((name, bytes));
            }
        }
        let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
        tracing::debug!(
            files = files.len(),
            bytes,
            "weights read into memory in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Self(files))
    }
}

/// A whole file in one shared buffer, read in place (no second copy of a large file).
fn read_shared(path: &Path) -> Result<Arc<[u8]>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())?;
    let mut buffer = Arc::<[u8]>::new_zeroed_slice(len);
    let slice = Arc::get_mut(&mut buffer).expect("a new Arc has no other owner");
    // SAFETY: the slice was zeroed, and zero is a valid u8.
    let bytes = unsafe { &mut *(std::ptr::from_mut(slice) as *mut [u8]) };
    file.read_exact(bytes)?;
    // SAFETY: every byte was initialised (zeroed, then read over).
    Ok(unsafe { buffer.assume_init() })
}

/// A session of `onnx` on `device`; its threads are the environment's global pool.
fn build_session(
    env: &Environment,
    onnx: &Path,
    device: DeviceChoice,
    options: &EngineOptions,
    weights: &WeightsInMemory,
) -> Result<(Session, Device)> {
    let attempt = |cuda: bool| -> Result<Session> {
        let mut builder = Session::builder(env)
            .map_err(|e| anyhow!("{e}"))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| anyhow!("{e}"))?;
        for (name, bytes) in &weights.0 {
            builder = builder
                .with_external_initializer_file_in_memory(name, bytes.clone())
                .map_err(|e| anyhow!("{name}: {e}"))?;
        }
        let mut builder = if cuda {
            builder
                .with_execution_providers([ep::CUDA::default()
                    .with_cuda_graph(options.cuda_graph)
                    .build()
                    .error_on_failure()])
                .map_err(|e| anyhow!("{e}"))?
        } else {
            builder
        };
        builder
            .commit_from_file(onnx)
            .map_err(|e| anyhow!("{}: {e}", onnx.display()))
    };
    match device {
        DeviceChoice::Cpu => Ok((attempt(false)?, Device::Cpu)),
        DeviceChoice::Cuda => Ok((
            attempt(true).context("CUDA was asked for (--device cuda) but failed")?,
            Device::Cuda,
        )),
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
    /// Binds each layer's buffer as both its past and its present: GroupQueryAttention then
    /// appends the new positions in place. Used by the batch-1 step and by both batch layouts.
    fn bind_kv_in_place(
        &self,
        binding: &mut IoBinding,
        layers: &mut [(DynTensor, DynTensor)],
    ) -> Result<()> {
        for ((k, v), ((past_k, past_v), (present_k, present_v))) in
            layers.iter_mut().zip(self.past.iter().zip(&self.present))
        {
            binding.bind_input(past_k.as_str(), &*k)?;
            binding.bind_input(past_v.as_str(), &*v)?;
            binding.bind_output(present_k.as_str(), &mut *k)?;
            binding.bind_output(present_v.as_str(), &mut *v)?;
        }
        Ok(())
    }

    fn inspect(session: &Session, files: &ModelFiles) -> Result<Self> {
        let kv = files.config.kv;
        let input_type = |name: &str| {
            session
                .inputs()
                .iter()
                .find(|i| i.name() == name)
                .and_then(|i| match i.dtype() {
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
            let names = (
                format!("past_key_values.{layer}.key"),
                format!("past_key_values.{layer}.value"),
            );
            let out = (
                format!("present.{layer}.key"),
                format!("present.{layer}.value"),
            );
            if input_type(&names.0).is_none()
                || input_type(&names.1).is_none()
                || !has_output(&out.0)
                || !has_output(&out.1)
            {
                return Err(unknown().context(format!(
                    "layer {layer} of {} (ghostline.json kv.num_layers)",
                    kv.num_layers
                )));
            }
            past.push(names);
            present.push(out);
        }
        let extra_layer = format!("past_key_values.{}.key", kv.num_layers);
        if input_type(&extra_layer).is_some() {
            bail!(
                "{}: graph has more layers than ghostline.json kv.num_layers = {}",
                files.onnx.display(),
                kv.num_layers
            );
        }
        let kv_type = input_type(&past[0].0).ok_or_else(unknown)?;
        if let Some(ValueType::Tensor { shape, .. }) = session
            .inputs()
            .iter()
            .find(|i| i.name() == past[0].0)
            .map(|i| i.dtype())
        {
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
        let logits_to_keep = session
            .overridable_initializers()
            .iter()
            .find(|i| i.name() == "logits_to_keep")
            .and_then(|i| match i.dtype() {
                ValueType::Tensor { ty, .. } => Some(*ty),
                _ => None,
            });
        Ok(Self {
            input_ids_type,
            attention_mask_type: input_type("attention_mask"),
            position_ids_type: input_type("position_ids"),
            past,
            present,
            kv_type,
            logits_to_keep,
        })
    }
}
