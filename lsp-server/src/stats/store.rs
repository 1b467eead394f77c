//! The local store: `stats.jsonl` in the data folder, one event a line
//! (`{"t":UNIX_SECONDS,"e":"shown"|"accepted"|"partial","lang":"rust","model":"…","ms":N}`),
//! appended by one thread; past `MAX_FILE_BYTES` it becomes `stats.jsonl.1` (the one before is
//! dropped) and a new file starts. Reading takes both. The table: per language and model, shown,
//! accepted, partly accepted, acceptance rate and p50/p90 time to shown, for today (since local
//! midnight) and the last N days.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Message;

pub const FILE: &str = "stats.jsonl";
/// About 50,000 events (weeks of typing); the file before is kept too.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Shown,
    Accepted,
    Partial,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub t: u64,
    pub e: Kind,
    pub lang: String,
    pub model: String,
    /// Shown only: milliseconds from the request's arrival to its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

impl Event {
    pub fn now(e: Kind, lang: String, model: String, ms: Option<u64>) -> Self {
        Self {
            t: unix_now(),
            e,
            lang,
            model,
            ms,
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rotated(path: &Path) -> PathBuf {
    path.with_extension("jsonl.1")
}

fn open(dir: &Path) -> std::io::Result<(File, u64)> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(dir.join(FILE))?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// The writer thread: appends each event as one `write` (whole lines even when two editors
/// append to the same file), rotating past `MAX_FILE_BYTES`. Ends when the sender goes.
pub(super) fn write_loop(dir: &Path, messages: Receiver<Message>) {
    let path = dir.join(FILE);
    let mut file: Option<(File, u64)> = None;
    let mut warned = false;
    for message in messages {
        let event = match message {
            Message::Event(event) => event,
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let Ok(mut line) = serde_json::to_vec(&event) else {
            continue;
        };
        line.push(b'\n');
        let result = (|| -> std::io::Result<()> {
            if file.is_none() {
                file = Some(open(dir)?);
            }
            let (handle, size) = file.as_ref().expect("opened above");
            if *size > 0 && size + line.len() as u64 > MAX_FILE_BYTES {
                // Another editor's server may have rotated it already: then the path is a
                // new file, which is not ours to rotate again.
                let ours = same_file(handle, &path);
                file = None;
                if ours {
                    std::fs::rename(&path, rotated(&path))?;
                }
                file = Some(open(dir)?);
            }
            let (handle, size) = file.as_mut().expect("opened above");
            handle.write_all(&line)?;
            *size += line.len() as u64;
            Ok(())
        })();
        if let Err(error) = result {
            file = None;
            if !warned {
                warned = true;
                tracing::warn!(
                    "cannot write acceptance stats to {}: {error}",
                    path.display()
                );
            }
        }
    }
}

/// Whether `handle` is the file at `path` now (not one renamed away since it was opened).
fn same_file(handle: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (handle.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (handle, path);
        true
    }
}

/// Events of `dir`'s store at or after `since` (unix seconds); unreadable lines are skipped.
pub fn read_events(dir: &Path, since: u64) -> Vec<Event> {
    let path = dir.join(FILE);
    let mut events = Vec::new();
    for file in [rotated(&path), path] {
        let Ok(file) = File::open(&file) else {
            continue;
        };
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            if let Ok(event) = serde_json::from_str::<Event>(&line) {
                if event.t >= since {
                    events.push(event);
                }
            }
        }
    }
    events
}

/// Seconds east of UTC of the local time zone now (0 where it cannot be known).
fn local_offset_seconds(now: u64) -> i64 {
    #[cfg(unix)]
    {
        let t = now as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which lives through the call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
        if ok {
            return tm.tm_gmtoff;
        }
    }
    let _ = now;
    0
}

/// Unix seconds of the local midnight that began today.
pub fn start_of_today(now: u64) -> u64 {
    let local = now as i64 + local_offset_seconds(now);
    (now as i64 - local.rem_euclid(86_400)).max(0) as u64
}

#[derive(Default)]
struct Row {
    shown: u64,
    accepted: u64,
    partial: u64,
    ms: Vec<u64>,
}

impl Row {
    fn add(&mut self, event: &Event) {
        match event.e {
            Kind::Shown => {
                self.shown += 1;
                if let Some(ms) = event.ms {
                    self.ms.push(ms);
                }
            }
            Kind::Accepted => self.accepted += 1,
            Kind::Partial => self.partial += 1,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn write_row(out: &mut String, language: &str, model: &str, row: &mut Row) {
    use std::fmt::Write as _;
    row.ms.sort_unstable();
    let rate = if row.shown > 0 {
        format!("{:.1}%", 100.0 * row.accepted as f64 / row.shown as f64)
    } else {
        "-".to_string()
    };
    let ms = |p| percentile(&row.ms, p).map_or("-".to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "{language:<16} {model:<32} {:>7} {:>9} {:>7} {rate:>7} {:>7} {:>7}",
        row.shown,
        row.accepted,
        row.partial,
        ms(50.0),
        ms(90.0)
    );
}

fn period(out: &mut String, title: &str, events: &[&Event]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n{title}");
    if events.is_empty() {
        let _ = writeln!(out, "  no suggestions shown");
        return;
    }
    let _ = writeln!(
        out,
        "{:<16} {:<32} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "language", "model", "shown", "accepted", "partly", "rate", "p50 ms", "p90 ms"
    );
    let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    let mut all = Row::default();
    for event in events {
        rows.entry((&event.lang, &event.model))
            .or_default()
            .add(event);
        all.add(event);
    }
    for ((language, model), mut row) in rows {
        write_row(out, language, model, &mut row);
    }
    if all.shown + all.accepted + all.partial > 0 {
        write_row(out, "(all)", "-", &mut all);
    }
}

/// The table of `dir`'s store at `now`: today, and the last `days` days (today included).
pub fn table(dir: &Path, now: u64, days: u64) -> String {
    let days = days.max(1);
    let today = start_of_today(now);
    let since = today.saturating_sub((days - 1) * 86_400);
    let events = read_events(dir, since);
    let mut out = format!(
        "Ghostline acceptance stats ({})\nrate: accepted / shown; partly: a word or line of a suggestion taken; p50/p90: time from a\ncompletion request's arrival in ghostline-lsp to its answer, in ms. Counts and timings only.\n",
        dir.join(FILE).display()
    );
    let todays: Vec<&Event> = events.iter().filter(|e| e.t >= today).collect();
    period(&mut out, "Today", &todays);
    let all: Vec<&Event> = events.iter().collect();
    let title = if days == 1 {
        "Last day".to_string()
    } else {
        format!("Last {days} days")
    };
    period(&mut out, &title, &all);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_rotates_past_the_limit_and_keeps_the_file_before() {
        let dir = std::env::temp_dir().join(format!("ghostline-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Nearly full: the next event goes to a new file, this one becomes `.1`.
        let filler = format!("{}\n", "x".repeat(MAX_FILE_BYTES as usize - 20));
        std::fs::write(dir.join(FILE), &filler).unwrap();
        let (sender, receiver) = std::sync::mpsc::sync_channel(8);
        let event = |ms| Event::now(Kind::Shown, "go".into(), "m".into(), Some(ms));
        sender.send(Message::Event(event(1))).unwrap();
        sender.send(Message::Event(event(2))).unwrap();
        drop(sender);
        write_loop(&dir, receiver);
        assert_eq!(
            std::fs::read_to_string(rotated(&dir.join(FILE))).unwrap(),
            filler
        );
        let events = read_events(&dir, 0);
        assert_eq!(
            events.iter().filter_map(|e| e.ms).collect::<Vec<_>>(),
            [1, 2]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&values, 50.0), Some(5));
        assert_eq!(percentile(&values, 90.0), Some(9));
        assert_eq!(percentile(&[7], 90.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn table_splits_today_from_older_days_and_rotated_files_count() {
        let dir = std::env::temp_dir().join(format!("ghostline-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = unix_now();
        let today = start_of_today(now);
        let line = |t: u64, e: &str, ms: &str| {
            format!("{{\"t\":{t},\"e\":\"{e}\",\"lang\":\"rust\",\"model\":\"m\"{ms}}}\n")
        };
        let old = line(today - 3 * 86_400, "shown", ",\"ms\":100");
        std::fs::write(rotated(&dir.join(FILE)), old).unwrap();
        let recent = [
            line(now, "shown", ",\"ms\":10"),
            line(now, "shown", ",\"ms\":30"),
            line(now, "accepted", ""),
            "not json\n".to_string(),
            line(now, "partial", ""),
        ]
        .concat();
        std::fs::write(dir.join(FILE), recent).unwrap();
        let text = table(&dir, now, 7);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("rust "))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!(
            &rows[0][..8],
            ["rust", "m", "2", "1", "1", "50.0%", "10", "30"]
        );
        assert_eq!(
            &rows[1][..8],
            ["rust", "m", "3", "1", "1", "33.3%", "30", "100"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
