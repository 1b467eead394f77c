//! The document-text oracle shared by the sync and fuzz tests: a `String`, with lines split
//! at "\r\n", "\n" or "\r" as LSP says, and the server's rules for clamping positions,
//! implemented independently of the server's rope code.
#![allow(dead_code)]

/// xorshift64*: deterministic, dependency-free randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: usize, denominator: usize) -> bool {
        self.below(denominator) < numerator
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Unit {
    Utf16,
    Utf8,
}

pub struct Oracle {
    pub text: String,
}

impl Oracle {
    /// Byte ranges of each line's content (without its break).
    pub fn lines(&self) -> Vec<(usize, usize)> {
        let bytes = self.text.as_bytes();
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    lines.push((start, i));
                    i += 2;
                    start = i;
                }
                b'\r' | b'\n' => {
                    lines.push((start, i));
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        lines.push((start, bytes.len()));
        lines
    }

    pub fn units(s: &str, unit: Unit) -> usize {
        match unit {
            Unit::Utf16 => s.encode_utf16().count(),
            Unit::Utf8 => s.len(),
        }
    }

    /// Byte offset of a position, with the server's clamping rules: a line past the end is
    /// the end of the text, a column past its line is the line's end, a column inside a
    /// character rounds down to its start.
    pub fn offset(&self, line: usize, column: usize, unit: Unit) -> usize {
        let lines = self.lines();
        let Some(&(start, end)) = lines.get(line) else {
            return self.text.len();
        };
        let mut units = 0;
        for (i, c) in self.text[start..end].char_indices() {
            let width = match unit {
                Unit::Utf16 => c.len_utf16(),
                Unit::Utf8 => c.len_utf8(),
            };
            if units + width > column {
                return start + i;
            }
            units += width;
        }
        end
    }

    /// A position for a byte offset that is a char boundary not inside a "\r\n".
    pub fn position(&self, offset: usize, unit: Unit) -> (usize, usize) {
        for (index, (start, end)) in self.lines().into_iter().enumerate() {
            if offset >= start && offset <= end {
                return (index, Self::units(&self.text[start..offset], unit));
            }
        }
        unreachable!("offset inside a line break")
    }

    /// A random position inside some line's content (never between \r and \n).
    pub fn random_boundary(&self, rng: &mut Rng) -> usize {
        let lines = self.lines();
        let (start, end) = lines[rng.below(lines.len())];
        let boundaries: Vec<usize> = self.text[start..end]
            .char_indices()
            .map(|(i, _)| start + i)
            .chain(std::iter::once(end))
            .collect();
        boundaries[rng.below(boundaries.len())]
    }

    /// Applies one LSP change (range in `unit`s, or the whole text when `None`).
    pub fn apply(&mut self, range: Option<(usize, usize, usize, usize)>, text: &str, unit: Unit) {
        let Some((start_line, start_col, end_line, end_col)) = range else {
            self.text = text.to_string();
            return;
        };
        let start = self.offset(start_line, start_col, unit);
        let end = self.offset(end_line, end_col, unit);
        let (start, end) = (start.min(end), start.max(end));
        self.text.replace_range(start..end, text);
    }
}
