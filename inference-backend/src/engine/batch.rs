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
//! a rebuild the old and the new buffer exist together (twice that), and a leaving member's
//! copied-out rows (its exact length) go to the prefix cache, which has its own byte budget.

use anyhow::{bail, Context, Result};
use ort::memory::MemoryInfo;

use super::{copy_last_logits, copy_row, int_tensor, on_host, DynTensor, Engine, KvState};

/// The decode batch: KV buffers shared by the decoding sequences, row `i` = `lens[i]` positions.
#[derive(Default)]
pub struct DecodeBatch {
    layers: Vec<(DynTensor, DynTensor)>,
    lens: Vec<usize>,
    /// Positions each row may reach (its prompt + max_tokens); the buffer holds the largest.
    needs: Vec<usize>,
    capacity: usize,
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

    /// Bytes of KV the batch holds.
    pub fn bytes(&self) -> usize {
        self.layers.iter().flat_map(|(k, v)| [k, v]).map(super::tensor_bytes).sum()
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
    pub fn rebuild_batch(&self, batch: &mut DecodeBatch, keep: &[bool], join: Vec<Joining>) -> Result<Vec<KvState>> {
        if keep.len() != batch.len() {
            bail!("rebuild_batch: {} keep flags for {} rows", keep.len(), batch.len());
        }
        let layers = self.kv.num_layers;
        if join.iter().any(|j| j.kv.layers.len() != layers) {
            bail!("a sequence joining the batch has no KV state");
        }
        // On CUDA: one download of each old buffer (the CPU reads host KV in place).
        let old: Vec<_> = batch.layers.iter().map(|(k, v)| Ok((on_host(k)?, on_host(v)?))).collect::<Result<_>>()?;

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
            left.push(KvState { layers: kv, len, capacity: len });
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
            .map(|j| j.kv.layers.iter().map(|(k, v)| Ok((on_host(k)?, on_host(v)?))).collect::<Result<_>>())
            .collect::<Result<_>>()?;
        // Room for every row's whole generation, and at least one more position for each.
        let capacity = rows.iter().map(|&(_, len, needs)| needs.max(len + 1)).max().unwrap_or(0);
        let mut new_layers = Vec::with_capacity(layers);
        if !rows.is_empty() {
            for layer in 0..layers {
                let fill = |dst: &mut DynTensor, key: bool| -> Result<()> {
                    for (to, (from, len, _)) in rows.iter().enumerate() {
                        let src = match from {
                            From::Old(row) => (if key { &old[layer].0 } else { &old[layer].1 }, *row),
                            From::Join(i) => (if key { &joined[*i][layer].0 } else { &joined[*i][layer].1 }, 0),
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
        let capacity = batch.capacity;
        if let Some(len) = batch.lens.iter().find(|&&len| len + 1 > capacity) {
            bail!("batch row of {len} positions has no room in {capacity}");
        }
        let mut binding = self.session.create_binding()?;
        binding.bind_input("input_ids", &int_tensor(self.io.input_ids_type, [rows, 1], tokens.iter().map(|&t| t as i64))?)?;
        if let Some(ty) = self.io.attention_mask_type {
            let mask = batch.lens.iter().flat_map(|&len| (0..capacity).map(move |p| i64::from(p <= len)));
            binding.bind_input("attention_mask", &int_tensor(ty, [rows, capacity], mask)?)?;
        }
        if let Some(ty) = self.io.position_ids_type {
            binding.bind_input("position_ids", &int_tensor(ty, [rows, 1], batch.lens.iter().map(|&len| len as i64))?)?;
        }
        for ((k, v), ((past_k, past_v), (present_k, present_v))) in
            batch.layers.iter_mut().zip(self.io.past.iter().zip(&self.io.present))
        {
            binding.bind_input(past_k.as_str(), &*k)?;
            binding.bind_input(past_v.as_str(), &*v)?;
            binding.bind_output(present_k.as_str(), &mut *k)?;
            binding.bind_output(present_v.as_str(), &mut *v)?;
        }
        binding.bind_output_to_device("logits", &MemoryInfo::default())?;
        let outputs = self.session.run_binding(&binding)?;
        let logits = outputs.get("logits").context("model did not return logits")?;
        copy_last_logits(logits, rows, &mut self.logits)?;
        for len in &mut batch.lens {
            *len += 1;
        }
        Ok(&self.logits)
    }
}
