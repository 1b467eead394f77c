//! Continuous batching of decode steps for GroupQueryAttention graphs (genai layout).
//!
//! Every sequence that is past its prompt decodes in one forward pass per step: batch B = the
//! number of decoding sequences, `input_ids` [B, 1], one token per row. Sequences join (after
//! their prefill, which runs batch-1 on their own `KvState`) and leave (finished, cancelled,
//! deadline) between steps.
//!
//! KV layout: per layer one owned buffer [B, kv heads, capacity, head dim], bound through
//! IoBinding as both past and present (GroupQueryAttention's shared-buffer mode, as
//! onnxruntime-genai's `past_present_share_buffer`). Rows are right-padded: row i holds `lens[i]`
//! valid positions. `attention_mask` is [B, capacity] with `lens[i] + 1` leading ones in row i,
//! so the graph's ReduceSum gives GroupQueryAttention per-row `seqlens_k = lens[i]` (it writes
//! row i's new key/value at position `lens[i]`, rotates it by that position, and attends to
//! positions 0..=lens[i] of row i only) and `total_sequence_length` = capacity = the buffer's
//! length, so the present shape equals the bound buffer. Between joins and leaves every step has
//! the same shapes and buffers.
//!
//! Why owned buffers and a copy on join/leave rather than views into one long-lived buffer: in
//! ort 2.0.0-rc.15 `IoBinding::bind_input` clones tensors that do not own their memory
//! (`TensorRefMut::from_raw` views) because they might alias, so a view bound as past would be
//! a copy and the in-place append would be lost. The rebuild is a copy of each member's valid
//! positions, paid only when membership changes, never per step.
//!
//! Memory bound: the batch holds at most `--max-active` rows of `capacity` positions, where
//! capacity is the largest `prompt + max_tokens` among its members (≤ the context length), so
//! at most `max_active × context_length × bytes_per_position` (bytes per position = layers × 2
//! × kv heads × head dim × element size: 24 KiB for the default 0.5B model in float32); during
//! a rebuild the old and the new buffer exist together (twice that). Requests still prefilling
//! hold their own KV (room for prompt + max_tokens, so that a request joining an empty batch
//! brings its buffers in without a copy), and they count against the same `--max-active` (rows +
//! prefilling ≤ max_active). A leaving member's copied-out rows (its exact length) go to the
//! prefix cache, which has its own byte budget (`--prefix-cache-mb`).

use anyhow::{bail, Context, Result};
use ort::{
    memory::MemoryInfo,
    session::RunOptions,
    value::{DynTensorValueType, Shape, TensorElementType, TensorRefMut, ValueType},
};

use super::{
    copy_last_logits, copy_row, host_kv_like, int_tensor, on_host, Device, DynTensor, Engine,
    EngineOptions, KvState,
};

/// CUDA graphs (`--cuda-graph`): the CUDA execution provider captures a run once and replays it,
/// which is only right while every input and output keeps its shape AND its device address. So
/// with CUDA graphs the decode batch has a fixed shape: `rows` = `--max-active` slots of
/// `capacity` = context-length positions, allocated once; idle slots run a dummy token (mask
/// with one 1, so GroupQueryAttention sees a valid length) and their logits are ignored;
/// `input_ids`, `attention_mask` and `logits` are device tensors allocated once and rewritten
/// in place each step. A joining sequence's rows are uploaded into its slot through a view of
/// the batch buffer (`Value::copy_into` into a `TensorRefMut::from_raw` view is a host-to-device
/// copy that binds the view as an OUTPUT, which rc.15 does not clone). A leaving sequence's rows
/// are not copied back (rc.15 would have to clone a device view bound as an input, and cloning
/// runs the same identity session whose lock `copy_into` holds): the prefix cache gets the
/// prompt's KV, kept from its prefill, instead of prompt + completion.
///
/// The memory bound is then exact: rows × capacity × bytes per position, all the time (for the
/// default model in float16 with 8 slots and a 32,768 context: 8 × 32,768 × 12 KiB = 3 GiB, so
/// lower `--context-length` with `--cuda-graph`).
///
/// Decode steps run with the run option `gpu_graph_id = 1` (captured once, then replayed); every
/// other run (prefill, batch-1 decode) with `gpu_graph_id = -1`, which ONNX Runtime runs without
/// capture. `GHOSTLINE_FIXED_BATCH=1` turns the fixed shape on without CUDA graphs (any device),
/// so that the slot logic is tested on the CPU.
pub(super) struct FixedShape {
    rows: usize,
    capacity: usize,
    /// Run options of the decode step (`gpu_graph_id = 1`) and of every other run (`-1`); `None`
    /// without CUDA graphs.
    pub(super) graph: Option<RunOptions>,
    pub(super) no_graph: Option<RunOptions>,
}

impl FixedShape {
    pub(super) fn choose(
        options: &EngineOptions,
        device: Device,
        in_place_kv: bool,
    ) -> Result<Option<Self>> {
        let test_mode = std::env::var_os("GHOSTLINE_FIXED_BATCH").is_some_and(|v| v == "1");
        let graphs = options.cuda_graph && device == Device::Cuda;
        if options.cuda_graph && !graphs {
            tracing::warn!("--cuda-graph ignored: the model runs on {device:?}");
        }
        if !(graphs || test_mode) {
            return Ok(None);
        }
        if !in_place_kv {
            if graphs {
                bail!("--cuda-graph needs a GroupQueryAttention (onnxruntime-genai) model with in-place KV");
            }
            return Ok(None);
        }
        let (rows, capacity) = options.fixed_batch;
        let (graph, no_graph) = if graphs {
            let mut graph = RunOptions::new()?;
            graph.set("gpu_graph_id", "1")?;
            let mut no_graph = RunOptions::new()?;
            no_graph.set("gpu_graph_id", "-1")?;
            (Some(graph), Some(no_graph))
        } else {
            (None, None)
        };
        tracing::info!(
            rows,
            capacity,
            cuda_graph = graphs,
            "fixed-shape decode batch"
        );
        Ok(Some(Self {
            rows: rows.max(1),
            capacity: capacity.max(2),
            graph,
            no_graph,
        }))
    }
}

/// Buffers of the fixed-shape batch, allocated once on the KV device.
struct FixedBuffers {
    /// Slot of each member, in member order.
    slots: Vec<usize>,
    /// Per slot: the prompt KV of the sequence there (what the prefix cache gets when it leaves).
    used: Vec<Option<KvState>>,
    input_ids: DynTensor,
    attention_mask: DynTensor,
    logits: DynTensor,
}

/// The decode batch: KV buffers shared by the decoding sequences, row `i` = `lens[i]` positions.
#[derive(Default)]
pub struct DecodeBatch {
    layers: Vec<(DynTensor, DynTensor)>,
    lens: Vec<usize>,
    /// Positions each row may reach (its prompt + max_tokens); the buffer holds the largest.
    needs: Vec<usize>,
    capacity: usize,
    /// With a fixed shape (CUDA graphs): member `i` is slot `fixed.slots[i]` of the buffers.
    fixed: Option<FixedBuffers>,
}

impl DecodeBatch {
    /// Rows (decoding sequences).
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Positions per row the buffers have room for.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Drops every row (after a failed step). A fixed-shape batch keeps its buffers: a captured
    /// CUDA graph replays their addresses.
    pub fn reset(&mut self) {
        self.lens.clear();
        self.needs.clear();
        match &mut self.fixed {
            Some(fixed) => {
                fixed.slots.clear();
                fixed.used.iter_mut().for_each(|slot| *slot = None);
            }
            None => *self = DecodeBatch::default(),
        }
    }

    /// Forgets the positions of row `row` from `len` on (the KV of drafted tokens the model did
    /// not confirm): GroupQueryAttention reads only the first `len` of them from now on, and the
    /// next step overwrites them.
    pub fn rewind(&mut self, row: usize, len: usize) -> Result<()> {
        match self.lens.get_mut(row) {
            Some(held) if len <= *held => {
                *held = len;
                Ok(())
            }
            held => bail!("cannot rewind batch row {row} of {held:?} positions to {len}"),
        }
    }

    /// Positions row `row` holds.
    pub fn row_len(&self, row: usize) -> Option<usize> {
        self.lens.get(row).copied()
    }

    /// Bytes of KV the batch holds.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|(k, v)| [k, v])
            .map(super::tensor_bytes)
            .sum()
    }
}

/// A sequence entering the batch: its KV state after prefill and the positions it may reach.
pub struct Joining {
    pub kv: KvState,
    pub needs: usize,
}

impl Engine {
    /// Changes the batch's membership in one copy: rows `i` with `keep[i] == false` leave (their
    /// valid positions are copied out into exact-length `KvState`s, returned in row order), the
    /// kept rows stay in order and `join` rows are appended after them. Any change reallocates the
    /// buffers, sized for the rows now in the batch.
    pub fn rebuild_batch(
        &self,
        batch: &mut DecodeBatch,
        keep: &[bool],
        join: Vec<Joining>,
    ) -> Result<Vec<KvState>> {
        if keep.len() != batch.len() {
            bail!(
                "rebuild_batch: {} keep flags for {} rows",
                keep.len(),
                batch.len()
            );
        }
        let layers = self.kv.num_layers;
        if join.iter().any(|j| j.kv.layers.len() != layers) {
            bail!("a sequence joining the batch has no KV state");
        }
        if self.fixed.is_some() {
            return self.rebuild_fixed(batch, keep, join);
        }
        // A sequence joining an empty batch alone, with buffers that have room for its whole
        // generation, becomes the batch as it is: no copy (each request of a lone editor).
        if batch.is_empty()
            && join.len() == 1
            && join[0]
                .kv
                .has_room_for(join[0].needs.max(join[0].kv.len + 1))
        {
            let Joining { kv, needs } = join.into_iter().next().expect("one joining sequence");
            batch.layers = kv.layers;
            batch.lens = vec![kv.len];
            batch.needs = vec![needs];
            batch.capacity = kv.capacity;
            return Ok(Vec::new());
        }
        // On CUDA: one download of each old buffer (the CPU reads host KV in place).
        let old: Vec<_> = batch
            .layers
            .iter()
            .map(|(k, v)| Ok((on_host(k)?, on_host(v)?)))
            .collect::<Result<_>>()?;

        let mut left = Vec::new();
        for (row, _) in keep.iter().enumerate().filter(|(_, &k)| !k) {
            let len = batch.lens[row];
            let mut kv = Vec::with_capacity(layers);
            for (k, v) in &old {
                kv.push((
                    self.kv_filled(1, len, |dst| copy_row(k, row, dst, 0, len))?,
                    self.kv_filled(1, len, |dst| copy_row(v, row, dst, 0, len))?,
                ));
            }
            left.push(KvState {
                layers: kv,
                len,
                capacity: len,
            });
        }

        // Rows of the new batch: where each one's KV comes from, its length and its need.
        enum From {
            Old(usize),
            Join(usize),
        }
        let mut rows: Vec<(From, usize, usize)> = Vec::with_capacity(batch.len() + join.len());
        for (row, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
            rows.push((From::Old(row), batch.lens[row], batch.needs[row]));
        }
        for (i, j) in join.iter().enumerate() {
            rows.push((From::Join(i), j.kv.len, j.needs));
        }
        let joined: Vec<Vec<_>> = join
            .iter()
            .map(|j| {
                j.kv.layers
                    .iter()
                    .map(|(k, v)| Ok((on_host(k)?, on_host(v)?)))
                    .collect::<Result<_>>()
            })
            .collect::<Result<_>>()?;
        // Room for every row's whole generation, and at least one more position for each.
        let capacity = rows
            .iter()
            .map(|&(_, len, needs)| needs.max(len + 1))
            .max()
            .unwrap_or(0);
        let mut new_layers = Vec::with_capacity(layers);
        if !rows.is_empty() {
            for layer in 0..layers {
                let fill = |dst: &mut DynTensor, key: bool| -> Result<()> {
                    for (to, (from, len, _)) in rows.iter().enumerate() {
                        let src = match from {
                            From::Old(row) => {
                                (if key { &old[layer].0 } else { &old[layer].1 }, *row)
                            }
                            From::Join(i) => (
                                if key {
                                    &joined[*i][layer].0
                                } else {
                                    &joined[*i][layer].1
                                },
                                0,
                            ),
                        };
                        copy_row(src.0, src.1, dst, to, *len)?;
                    }
                    Ok(())
                };
                let k = self.kv_filled(rows.len(), capacity, |dst| fill(dst, true))?;
                let v = self.kv_filled(rows.len(), capacity, |dst| fill(dst, false))?;
                new_layers.push((k, v));
            }
        }
        drop(old);
        batch.layers = new_layers;
        batch.lens = rows.iter().map(|r| r.1).collect();
        batch.needs = rows.iter().map(|r| r.2).collect();
        batch.capacity = capacity;
        Ok(left)
    }

    /// One decode step for every row: `tokens[i]` is appended to row `i`. Returns the logits,
    /// row after row (`batch.len() × vocab`).
    pub fn forward_batch(&mut self, batch: &mut DecodeBatch, tokens: &[u32]) -> Result<&[f32]> {
        let rows = batch.len();
        if tokens.len() != rows || rows == 0 {
            bail!("forward_batch: {} tokens for {rows} rows", tokens.len());
        }
        if self.fixed.is_some() {
            return self.forward_fixed(batch, tokens);
        }
        self.forward_rows(batch, tokens, 1)
    }

    /// Whether a decode step can check a drafted continuation (`forward_drafted`): the graph
    /// gives the logits of several last positions, and the batch's shapes may change (not with
    /// CUDA graphs, which replay one captured shape).
    pub fn can_verify_drafts(&self) -> bool {
        self.io.logits_to_keep.is_some() && self.in_place_kv && self.fixed.is_none()
    }

    /// A decode step of a one-row batch that appends all of `tokens` (the sampled token, then
    /// drafted guesses of the next ones) and returns the logits after each of them
    /// (`tokens.len() × vocab`), so one pass tells which guesses the model agrees with. The row
    /// then holds every token's KV; `DecodeBatch::rewind` drops those of rejected guesses.
    pub fn forward_drafted(&mut self, batch: &mut DecodeBatch, tokens: &[u32]) -> Result<&[f32]> {
        if batch.len() != 1 || tokens.is_empty() || !self.can_verify_drafts() {
            bail!("forward_drafted: {} tokens for {} rows (drafts are checked for one row, on graphs with logits_to_keep)", tokens.len(), batch.len());
        }
        self.forward_rows(batch, tokens, tokens.len())
    }

    /// Appends `per_row` tokens to each row (`tokens` row after row) and returns the logits of
    /// those positions, row after row. GroupQueryAttention takes each row's past length from its
    /// mask (`lens[i] + per_row` leading ones) and attends causally within the new tokens.
    fn forward_rows(
        &mut self,
        batch: &mut DecodeBatch,
        tokens: &[u32],
        per_row: usize,
    ) -> Result<&[f32]> {
        let rows = batch.len();
        let capacity = batch.capacity;
        if let Some(len) = batch.lens.iter().find(|&&len| len + per_row > capacity) {
            bail!("batch row of {len} positions has no room for {per_row} more in {capacity}");
        }
        let mut binding = self.session.create_binding()?;
        binding.bind_input(
            "input_ids",
            &int_tensor(
                self.io.input_ids_type,
                [rows, per_row],
                tokens.iter().map(|&t| t as i64),
            )?,
        )?;
        if let Some(ty) = self.io.attention_mask_type {
            let mask = batch
                .lens
                .iter()
                .flat_map(|&len| (0..capacity).map(move |p| i64::from(p < len + per_row)));
            binding.bind_input("attention_mask", &int_tensor(ty, [rows, capacity], mask)?)?;
        }
        if let Some(ty) = self.io.position_ids_type {
            let positions = batch
                .lens
                .iter()
                .flat_map(|&len| (len..len + per_row).map(|p| p as i64));
            binding.bind_input("position_ids", &int_tensor(ty, [rows, per_row], positions)?)?;
        }
        if per_row > 1 {
            let ty = self
                .io
                .logits_to_keep
                .context("the graph has no logits_to_keep input")?;
            binding.bind_input(
                "logits_to_keep",
                &int_tensor(ty, [1], std::iter::once(per_row as i64))?,
            )?;
        }
        self.io.bind_kv_in_place(&mut binding, &mut batch.layers)?;
        binding.bind_output_to_device("logits", &MemoryInfo::default())?;
        let outputs = self.session.run_binding(&binding)?;
        let logits = outputs
            .get("logits")
            .context("model did not return logits")?;
        copy_last_logits(logits, rows, per_row, &mut self.logits)?;
        for len in &mut batch.lens {
            *len += per_row;
        }
        Ok(&self.logits)
    }
}

impl Engine {
    /// `rebuild_batch` with a fixed shape: slots are freed and taken, the buffers stay.
    fn rebuild_fixed(
        &self,
        batch: &mut DecodeBatch,
        keep: &[bool],
        join: Vec<Joining>,
    ) -> Result<Vec<KvState>> {
        let shape = self.fixed.as_ref().context("no fixed shape")?;
        let (rows, capacity) = (shape.rows, shape.capacity);
        if batch.fixed.is_none() {
            batch.layers = (0..self.kv.num_layers)
                .map(|_| {
                    Ok((
                        self.kv_buffer(rows, capacity)?,
                        self.kv_buffer(rows, capacity)?,
                    ))
                })
                .collect::<Result<_>>()?;
            let allocator = self
                .device_allocator
                .as_ref()
                .unwrap_or(self.session.allocator());
            let mask_type = self
                .io
                .attention_mask_type
                .context("a fixed-shape batch needs an attention_mask input")?;
            let (logits_type, vocab) = match self
                .session
                .outputs()
                .iter()
                .find(|o| o.name() == "logits")
                .map(|o| o.dtype())
            {
                Some(ValueType::Tensor { ty, shape, .. }) if shape.len() == 3 && shape[2] > 0 => {
                    (*ty, shape[2])
                }
                other => bail!(
                    "a fixed-shape batch needs logits with a fixed vocabulary, found {other:?}"
                ),
            };
            batch.fixed = Some(FixedBuffers {
                slots: Vec::new(),
                used: (0..rows).map(|_| None).collect(),
                input_ids: DynTensor::new(allocator, self.io.input_ids_type, [rows as i64, 1])?,
                attention_mask: DynTensor::new(
                    allocator,
                    mask_type,
                    [rows as i64, capacity as i64],
                )?,
                logits: DynTensor::new(allocator, logits_type, [rows as i64, 1, vocab])?,
            });
            batch.capacity = capacity;
        }
        let fixed = batch.fixed.as_mut().context("no fixed buffers")?;
        let mut left = Vec::new();
        let (mut slots, mut lens, mut needs) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &kept) in keep.iter().enumerate() {
            let slot = fixed.slots[i];
            if kept {
                slots.push(slot);
                lens.push(batch.lens[i]);
                needs.push(batch.needs[i]);
            } else {
                left.push(fixed.used[slot].take().unwrap_or_default());
            }
        }
        for j in join {
            if j.kv.len + 1 > capacity {
                bail!("a sequence of {} positions does not fit the fixed batch ({capacity} positions)", j.kv.len);
            }
            let slot = (0..rows)
                .find(|s| fixed.used[*s].is_none() && !slots.contains(s))
                .context("no free slot in the fixed batch")?;
            for ((k, v), (own_k, own_v)) in batch.layers.iter_mut().zip(&j.kv.layers) {
                upload_into_slot(&*on_host(own_k)?, j.kv.len, k, slot)?;
                upload_into_slot(&*on_host(own_v)?, j.kv.len, v, slot)?;
            }
            slots.push(slot);
            lens.push(j.kv.len);
            needs.push(j.needs.min(capacity));
            fixed.used[slot] = Some(j.kv);
        }
        fixed.slots = slots;
        batch.lens = lens;
        batch.needs = needs;
        Ok(left)
    }

    /// `forward_batch` with a fixed shape: every slot runs, idle ones on a dummy token.
    fn forward_fixed(&mut self, batch: &mut DecodeBatch, tokens: &[u32]) -> Result<&[f32]> {
        let shape = self.fixed.as_ref().context("no fixed shape")?;
        let (rows, capacity) = (shape.rows, shape.capacity);
        let fixed = batch.fixed.as_mut().context("no fixed buffers")?;
        let mut slot_tokens = vec![0i64; rows];
        let mut slot_lens = vec![0usize; rows];
        for ((&slot, &token), &len) in fixed.slots.iter().zip(tokens).zip(&batch.lens) {
            if len + 1 > capacity {
                bail!("batch row of {len} positions has no room in {capacity}");
            }
            slot_tokens[slot] = token as i64;
            slot_lens[slot] = len;
        }
        // Rewritten in place: a captured graph reads them at the addresses it was captured with.
        let ids = int_tensor(self.io.input_ids_type, [rows, 1], slot_tokens.into_iter())?;
        ids.view()
            .downcast::<DynTensorValueType>()?
            .copy_into(&mut fixed.input_ids)?;
        let mask_type = self
            .io
            .attention_mask_type
            .context("a fixed-shape batch needs an attention_mask input")?;
        let mask = int_tensor(
            mask_type,
            [rows, capacity],
            slot_lens
                .iter()
                .flat_map(|&len| (0..capacity).map(move |p| i64::from(p <= len))),
        )?;
        mask.view()
            .downcast::<DynTensorValueType>()?
            .copy_into(&mut fixed.attention_mask)?;

        let mut binding = self.session.create_binding()?;
        binding.bind_input("input_ids", &fixed.input_ids)?;
        binding.bind_input("attention_mask", &fixed.attention_mask)?;
        self.io.bind_kv_in_place(&mut binding, &mut batch.layers)?;
        binding.bind_output("logits", &mut fixed.logits)?;
        match self.fixed.as_ref().and_then(|f| f.graph.as_ref()) {
            Some(options) => drop(self.session.run_binding_with_options(&binding, options)?),
            None => drop(self.session.run_binding(&binding)?),
        }
        let mut all = Vec::new();
        copy_last_logits(&*on_host(&fixed.logits)?, rows, 1, &mut all)?;
        let vocab = all.len() / rows;
        self.logits.clear();
        for &slot in &fixed.slots {
            self.logits
                .extend_from_slice(&all[slot * vocab..(slot + 1) * vocab]);
        }
        for len in &mut batch.lens {
            *len += 1;
        }
        Ok(&self.logits)
    }
}

/// Writes the first `len` positions of `own` ([1, heads, any capacity, dim], host) into slot
/// `slot` of `batch` ([rows, heads, capacity, dim], on the KV device), through a view of that
/// slot bound as the output of `Value::copy_into`.
fn upload_into_slot(own: &DynTensor, len: usize, batch: &mut DynTensor, slot: usize) -> Result<()> {
    let shape = batch.shape().clone();
    let (heads, capacity, dim) = (shape[1], shape[2], shape[3]);
    let mut row = host_kv_like(batch, 1, capacity as usize)?;
    copy_row(own, 0, &mut row, 0, len)?;
    let ty = match batch.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => bail!("KV is not a tensor: {other:?}"),
    };
    let row_bytes = ty
        .byte_size((heads * capacity * dim) as usize)
        .context("KV element size")?;
    let info = batch.memory_info().to_owned();
    // SAFETY: the view covers slot `slot` of `batch` (in bounds: slot < rows), and lives only
    // for this copy, while `batch` is borrowed mutably.
    unsafe {
        let ptr = batch
            .data_ptr_mut()
            .cast::<u8>()
            .add(slot * row_bytes)
            .cast();
        let view_shape = Shape::from([1, heads, capacity, dim]);
        match ty {
            TensorElementType::Float32 => row.copy_into(
                TensorRefMut::<f32>::from_raw(info, ptr, view_shape)?
                    .into_dyn()
                    .downcast::<DynTensorValueType>()?,
            )?,
            TensorElementType::Float16 => row.copy_into(
                TensorRefMut::<half::f16>::from_raw(info, ptr, view_shape)?
                    .into_dyn()
                    .downcast::<DynTensorValueType>()?,
            )?,
            other => bail!("unsupported KV type {other:?}"),
        }
    }
    Ok(())
}
