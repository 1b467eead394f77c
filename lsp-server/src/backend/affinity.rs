//! The affinity key sent with every backend request (`X-Session-ID`), so that a router in
//! front of several ghostline-serve replicas (vllm-router's `consistent_hash`, nginx
//! `hash $http_x_session_id consistent`, an ingress's `upstream-hash-by`) sends every
//! keystroke of a document to the replica whose prefix cache already holds its prompt.
//!
//! The key is an HMAC-SHA256 of the workspace folders and the document's URI under a secret of
//! this installation (32 random bytes in `affinity.key`, see `data_dir`): it names no path and
//! carries no code, and, unlike a plain hash, it cannot be recovered by hashing guessed paths
//! (home folders and file names are few enough to try them all). It is the same for a document
//! across keystrokes and restarts of the editor (the same secret, workspace and file give the
//! same key), different for different documents, so one person's open files spread over the
//! replicas, and different between installations.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

pub const HEADER: &str = ghostline_protocol::headers::SESSION_ID;

/// Overrides where the secret is kept (its folder); for tests and unusual set-ups.
pub const DATA_DIR_ENV: &str = "GHOSTLINE_DATA_DIR";
const SECRET_FILE: &str = "affinity.key";
const SECRET_BYTES: usize = 32;

type Secret = [u8; SECRET_BYTES];

static SECRET: OnceLock<Secret> = OnceLock::new();

/// Reads (or creates) the secret on a thread of its own, so that the first request finds it
/// loaded and never reads the disk on the async runtime. A request that comes first waits for
/// that read (one small file) or does it itself.
pub fn load_in_background() {
    let spawned = std::thread::Builder::new()
        .name("ghostline-affinity".into())
        .spawn(|| {
            secret();
        });
    if let Err(e) = spawned {
        tracing::debug!("cannot start a thread to read the affinity key ({e}); read on first use");
    }
}

/// `roots`: the workspace folders, in the order the editor gave them; `uri`: the document.
pub fn key(roots: &[PathBuf], uri: &str) -> String {
    keyed(secret(), roots, uri)
}

fn keyed(secret: &Secret, roots: &[PathBuf], uri: &str) -> String {
    let mut message = Vec::with_capacity(64 + uri.len());
    message.extend_from_slice(b"ghostline-affinity/2\0");
    for root in roots {
        message.extend_from_slice(root.as_os_str().as_encoded_bytes());
        message.push(0);
    }
    message.push(0);
    message.extend_from_slice(uri.as_bytes());
    let digest = hmac_sha256(secret, &message);
    // 128 bits: plenty to spread documents over replicas, and nothing to read back.
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 2104 HMAC with SHA-256 (64-byte blocks; the key is shorter than a block).
fn hmac_sha256(key: &Secret, message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn secret() -> &'static Secret {
    SECRET.get_or_init(|| {
        let Some(dir) = data_dir() else {
            tracing::warn!(
                "no data folder (neither {DATA_DIR_ENV}, XDG_DATA_HOME nor HOME is set): the affinity key (X-Session-ID) changes with every start"
            );
            return random_secret();
        };
        match load_or_create(&dir) {
            Ok(secret) => secret,
            Err(why) => {
                tracing::warn!(
                    "cannot keep the affinity key in {} ({why}): X-Session-ID uses a key for this session only",
                    dir.join(SECRET_FILE).display()
                );
                random_secret()
            }
        }
    })
}

/// `$GHOSTLINE_DATA_DIR`, else `$XDG_DATA_HOME/ghostline`, else `~/.local/share/ghostline`
/// (an empty or relative variable counts as unset, as the XDG base directory rules say).
/// Shared: the acceptance stats (`stats`) live there too.
pub fn data_dir() -> Option<PathBuf> {
    let set = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(dir) = set(DATA_DIR_ENV) {
        return Some(dir);
    }
    if let Some(data_home) = set("XDG_DATA_HOME") {
        return Some(data_home.join("ghostline"));
    }
    set("HOME").map(|home| home.join(".local/share/ghostline"))
}

/// The secret in `dir`, created there (readable by its owner only) when there is none. Two
/// editors starting at once agree on one: each writes its own temporary file and links it to
/// the final name, which only the first link gets.
fn load_or_create(dir: &Path) -> Result<Secret, String> {
    let path = dir.join(SECRET_FILE);
    match read_secret(&path) {
        Ok(Some(secret)) => return Ok(secret),
        Ok(None) => {}
        Err(why) => return Err(why),
    }
    create_private_dir(dir).map_err(|e| format!("cannot create the folder: {e}"))?;
    let secret = random_secret();
    let temporary = dir.join(format!("{SECRET_FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = write_private(&temporary, &secret);
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, &path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_secret(&path)?.ok_or_else(|| "it vanished while being created".to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `Ok(None)` when there is no file.
fn read_secret(path: &Path) -> Result<Option<Secret>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Secret::try_from(bytes.as_slice())
            .map(Some)
            .map_err(|_| format!("it holds {} bytes, not {SECRET_BYTES}", bytes.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_private(path: &Path, secret: &Secret) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(secret)?;
    file.sync_all()
}

fn random_secret() -> Secret {
    let mut secret = [0u8; SECRET_BYTES];
    if let Err(e) = getrandom::getrandom(&mut secret) {
        // The system has no randomness to give (never seen): a key still unknown outside this
        // process, from the clock and addresses, rather than none.
        tracing::warn!("no system randomness ({e}): the affinity key is derived from the clock");
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut hasher = Sha256::new();
        hasher.update(clock.to_le_bytes());
        hasher.update(std::process::id().to_le_bytes());
        hasher.update((&secret as *const Secret as usize).to_le_bytes());
        secret = hasher.finalize().into();
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::{hmac_sha256, keyed};
    use std::path::PathBuf;

    #[test]
    fn stable_per_document_and_secret_and_free_of_the_path() {
        let secret = [7u8; 32];
        let roots = vec![PathBuf::from("/home/ada/project")];
        let a = keyed(&secret, &roots, "file:///home/ada/project/src/lib.rs");
        assert_eq!(
            a,
            keyed(&secret, &roots, "file:///home/ada/project/src/lib.rs")
        );
        assert_ne!(
            a,
            keyed(&secret, &roots, "file:///home/ada/project/src/main.rs")
        );
        assert_ne!(
            a,
            keyed(
                &secret,
                &[PathBuf::from("/home/bob/project")],
                "file:///home/ada/project/src/lib.rs"
            )
        );
        assert_ne!(
            a,
            keyed(&[8u8; 32], &roots, "file:///home/ada/project/src/lib.rs"),
            "another installation, another key"
        );
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn hmac_matches_rfc_4231_with_a_32_byte_key() {
        // RFC 4231 test case 2's message under a 32-byte key of 0x0b, checked against Python's
        // `hmac.new(b"\x0b" * 32, b"what do ya want for nothing?", "sha256")`.
        let digest = hmac_sha256(&[0x0b; 32], b"what do ya want for nothing?");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "c3f2649c34ea24e4d62a2c7e868bbea0233c9d4c2cc300794db76aa18d6822d8"
        );
    }
}
