//! Files never read into the index or a prompt. Decided on every name a file goes by: the
//! path as given, and the path it resolves to (symlinks followed), both matched without
//! regard to case (a case-insensitive file system opens `.ENV` as `.env`). `excludeGlobs` adds
//! globs; a glob starting with `!` lets a file that only a built-in glob excludes back in.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Matched against the file name, the whole path and the path relative to its workspace
/// folder (`**/` globs need a folder, the others match names anywhere).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    // Environment files.
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    // Keys and certificates with keys.
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "*.ppk",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "**/.ssh/*",
    "**/.gnupg/**",
    // Package registries and VCS credentials.
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".gem/credentials",
    ".dockercfg",
    "**/.docker/config.json",
    "**/.kube/config",
    "kubeconfig",
    "*.kubeconfig",
    "**/gh/hosts.yml",
    ".pgpass",
    ".my.cnf",
    ".htpasswd",
    ".vault-token",
    ".s3cfg",
    ".boto",
    // Cloud CLIs.
    "**/.aws/credentials",
    "**/.aws/config",
    "**/gcloud/application_default_credentials.json",
    "**/gcloud/credentials.db",
    "**/gcloud/access_tokens.db",
    "**/gcloud/legacy_credentials/**",
    "**/.azure/**",
    "credentials",
    "credentials.*",
    "*credentials*.json",
    "service-account*.json",
    // Infrastructure secrets.
    "secrets.*",
    "*.secrets",
    "*.tfvars",
    "*.tfvars.json",
    "*.tfstate",
    "*.tfstate.*",
];

/// The exclusion list in force: the defaults plus the user's `excludeGlobs`.
#[derive(Clone, Debug)]
pub struct Excludes {
    defaults: GlobSet,
    /// The user's own globs: always excluded.
    extra: GlobSet,
    /// The user's `!globs`: not excluded by a default.
    allowed: GlobSet,
}

impl Default for Excludes {
    fn default() -> Self {
        Self::new(&[])
    }
}

fn build(patterns: impl IntoIterator<Item = String>) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        match GlobBuilder::new(&pattern).case_insensitive(true).build() {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(error) => tracing::warn!("ignoring exclude glob {pattern:?}: {error}"),
        }
    }
    builder.build().unwrap_or_else(|error| {
        tracing::warn!("exclude globs: {error}");
        GlobSet::empty()
    })
}

impl Excludes {
    pub fn new(extra: &[String]) -> Self {
        let defaults = build(DEFAULT_EXCLUDES.iter().map(|p| p.to_string()));
        let (allowed, extra): (Vec<&String>, Vec<&String>) =
            extra.iter().partition(|p| p.starts_with('!'));
        Self {
            defaults,
            extra: build(extra.into_iter().cloned()),
            allowed: build(allowed.into_iter().map(|p| p[1..].to_string())),
        }
    }

    fn matches(set: &GlobSet, path: &Path, relative: Option<&Path>) -> bool {
        path.file_name()
            .is_some_and(|name| set.is_match(Path::new(name)))
            || set.is_match(path)
            || relative.is_some_and(|relative| set.is_match(relative))
    }

    /// One name of the file: excluded by the user's globs, or by a default they do not
    /// let back in. No file system access: for filtering many indexed files, whose resolved
    /// path the index already judged when it read them.
    pub fn excludes_name(&self, path: &Path, relative: Option<&Path>) -> bool {
        Self::matches(&self.extra, path, relative)
            || (Self::matches(&self.defaults, path, relative)
                && !Self::matches(&self.allowed, path, relative))
    }

    /// `path` is absolute or relative to a workspace root; both it and its file name are
    /// matched, so `*.pem` and `config/*.yaml` both work. A path that resolves elsewhere (a
    /// symlink, or through one) is also judged by where it leads: reads the disk.
    pub fn is_excluded(&self, path: &Path, relative: Option<&Path>) -> bool {
        self.excludes_name(path, relative)
            || self.excludes_link_target(path, resolve_links(path).as_deref())
    }

    /// Whether `path`, which leads to `target` (from `resolve_links`, perhaps resolved
    /// earlier), is excluded by where it leads. No file system access.
    pub fn excludes_link_target(&self, path: &Path, target: Option<&Path>) -> bool {
        target.is_some_and(|target| target != path && self.excludes_name(target, None))
    }

    /// For a document with no local path (`untitled:`, a remote URI): its last segment.
    pub fn is_excluded_name(&self, name: &str) -> bool {
        !name.is_empty() && self.excludes_name(Path::new(name), None)
    }
}

/// `%XX` escapes decoded (a URI's `%2Eenv` is the file `.env`); a malformed escape stays as
/// written, invalid UTF-8 is replaced.
pub fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Where `path` leads once every symlink on the way is followed; `None` when it does not
/// exist (an unsaved file) or cannot be read. Reads the disk: never on the arrival lane.
pub fn resolve_links(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    std::fs::canonicalize(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_excluded() {
        let excludes = Excludes::new(&["generated/**".to_string()]);
        for path in [
            ".env",
            "config/.env.production",
            "certs/server.pem",
            "home/.ssh/id_rsa",
            "id_ed25519.pub",
            ".npmrc",
            "aws/credentials",
            "x/y.key",
            "/home/u/.docker/config.json",
            "/home/u/.kube/config",
            ".pypirc",
            ".git-credentials",
            ".netrc",
            "/home/u/.aws/credentials",
            "/home/u/.config/gcloud/application_default_credentials.json",
            "/home/u/.azure/msal_token_cache.json",
            "keystore.p12",
            "infra/terraform.tfvars",
            "config/secrets.yaml",
            "/w/.ENV",
            "/w/Config/Secrets.YML",
        ] {
            assert!(excludes.is_excluded(Path::new(path), None), "{path}");
        }
        assert!(excludes.is_excluded(
            Path::new("/w/generated/a.rs"),
            Some(Path::new("generated/a.rs"))
        ));
        for path in [
            "src/env.rs",
            "src/keys.rs",
            "app/config.json",
            "kube/config.rs",
            "src/secret_sharing.py",
        ] {
            assert!(!excludes.is_excluded(Path::new(path), None), "{path}");
        }
    }

    #[test]
    fn names_in_uris_are_decoded() {
        assert_eq!(percent_decoded("%2Eenv"), ".env");
        assert_eq!(percent_decoded("caf%C3%A9%20x"), "café x");
        assert_eq!(percent_decoded("a%2"), "a%2");
        assert_eq!(percent_decoded("a%zz"), "a%zz");
        assert_eq!(percent_decoded("a%FF"), "a\u{FFFD}");
        assert!(Excludes::default().is_excluded_name(&percent_decoded("%2Eenv")));
    }

    #[test]
    fn bang_globs_let_a_default_back_in_but_not_past_a_link() {
        let excludes = Excludes::new(&["!secrets.example.yaml".to_string()]);
        assert!(!excludes.is_excluded(Path::new("/w/secrets.example.yaml"), None));
        assert!(excludes.is_excluded(Path::new("/w/secrets.yaml"), None));
    }

    #[test]
    fn symlinks_are_judged_by_their_target() {
        let dir = std::env::temp_dir().join(format!("ghostline-excludes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join(".env"), "A=1\n").unwrap();
        std::fs::write(dir.join("plain.txt"), "A=1\n").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join(".env"), dir.join("app_settings.txt")).unwrap();
            std::os::unix::fs::symlink(&dir, dir.join("sub/up")).unwrap();
            let excludes = Excludes::default();
            assert!(excludes.is_excluded(
                &dir.join("app_settings.txt"),
                Some(Path::new("app_settings.txt"))
            ));
            assert!(excludes.is_excluded(&dir.join("sub/up/app_settings.txt"), None));
            assert!(!excludes.is_excluded(&dir.join("sub/up/plain.txt"), None));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
