"""The evaluation's code: pinned archives (crates.io crates, PyPI sdists, Go module sources as
Go module proxy zips or Debian's upstream tarballs), downloaded once into the cache, checked
against their sha256 every run, extracted next to them."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("GHOSTLINE_CACHE", Path.home() / ".cache" / "ghostline"))
EVAL_CACHE = CACHE / "eval"


class PackageError(Exception):
    """A package could not be fetched, or is not what packages.toml pins."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    language: str  # "rust" | "python" | "go"
    url: str
    sha256: str
    root: str
    source: str  # relative to root; "." or "" is root itself
    half: str  # "dev" (tuned on) | "held-out", "held-out-2", ... (each scored once, at the end): HALVES
    smoke: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.language]

    @property
    def archive_name(self) -> str:
        path = urllib.parse.urlparse(self.url).path
        if "/@v/" in path:  # a Go module proxy zip is named only by its version: v1.8.1.zip
            return f"{self.key}.zip"
        return Path(path).name


EXTENSIONS = {"rust": ".rs", "python": ".py", "go": ".go"}
HALVES = ("dev", "held-out", "held-out-2", "held-out-3", "held-out-4", "held-out-5", "held-out-6")


def go_proxy_url(module: str, version: str) -> str:
    """The Go module proxy's zip of `module`@`version` (uppercase letters escaped as `!x`); every
    path inside starts with `<module>@<version>/`, which is that package's `root`."""
    escape = lambda s: re.sub(r"[A-Z]", lambda m: "!" + m.group().lower(), s)
    return f"https://proxy.golang.org/{escape(module)}/@v/{escape(version)}.zip"


def load(path: Path = HERE / "packages.toml") -> list[Package]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    packages = []
    for entry in data["package"]:
        key = f"{entry.get('name')}-{entry.get('version')}"
        if entry.get("half") not in HALVES:
            raise PackageError(f"{key}: half must be one of {HALVES}, not {entry.get('half')!r}")
        try:
            packages.append(Package(**entry))
        except TypeError as e:
            raise PackageError(f"{key}: {e}") from None
    for p in packages:
        if p.language not in EXTENSIONS:
            raise PackageError(f"{p.key}: unknown language {p.language!r}")
        if len(p.sha256) != 64:
            raise PackageError(f"{p.key}: sha256 must be 64 hex digits")
    return packages


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _get(url: str, timeout: float = 60) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "ghostline-eval (tests/eval)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _fallback_urls(p: Package) -> list[str]:
    """Where else the same pinned file can come from (the sha256 decides either way)."""
    if p.language == "rust":
        return [f"https://crates.io/api/v1/crates/{p.name}/{p.version}/download"]
    if p.language != "python":
        return []
    urls = []
    for meta in (f"https://pypi.org/pypi/{p.name}/{p.version}/json", f"https://pypi.org/pypi/{p.name}/json"):
        try:
            data = json.loads(_get(meta))
        except (urllib.error.URLError, OSError, ValueError):
            continue
        files = data.get("urls", []) if "releases" not in data else data["releases"].get(p.version, [])
        for f in files:
            if f.get("packagetype") == "sdist" and f.get("digests", {}).get("sha256") == p.sha256:
                urls.append(urllib.parse.urljoin(meta, f["url"]))
        if urls:
            break
    return urls


def _download(p: Package, dest: Path) -> None:
    errors = []
    candidates = [p.url]
    tried_fallbacks = False
    while candidates:
        url = candidates.pop(0)
        for attempt in range(3):
            try:
                body = _get(url)
                break
            except (urllib.error.URLError, OSError) as e:
                errors.append(f"{url}: {e}")
                time.sleep(1 + attempt)
        else:
            if not candidates and not tried_fallbacks:
                tried_fallbacks = True
                candidates = _fallback_urls(p)
            continue
        digest = hashlib.sha256(body).hexdigest()
        if digest != p.sha256:
            raise PackageError(f"{p.key}: {url} has sha256 {digest}, packages.toml pins {p.sha256}")
        tmp = dest.with_suffix(dest.suffix + ".part")
        tmp.write_bytes(body)
        tmp.replace(dest)
        return
    raise PackageError(f"{p.key}: download failed: " + "; ".join(errors))


# Tool caches some archives ship by accident (packaging 24.1's sdist has tests/.pytest_cache):
# not source, and full of generated lines. Never extracted.
LITTER = {".pytest_cache", "__pycache__", ".mypy_cache"}


def _litter(name: str) -> bool:
    return any(part in LITTER for part in name.split("/"))


def extract(archive: Path, dest: Path) -> None:
    """Unpack a .zip or a (compressed) tar into `dest`, refusing members that would land outside
    it (absolute paths, `..`, links: tarfile's "data" filter; checked by hand for zip), and
    leaving out tool caches (LITTER)."""
    if archive.suffix == ".zip":
        base = dest.resolve()
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                name = info.filename
                target = (base / name).resolve()
                if name.startswith(("/", "\\")) or "\\" in name or ":" in name.split("/")[0] or (
                    target != base and base not in target.parents
                ):
                    raise PackageError(f"{archive.name}: unsafe path {name!r}")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise PackageError(f"{archive.name}: symlink {name!r}")
            z.extractall(dest, members=[i for i in z.infolist() if not _litter(i.filename)])
        return
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter=lambda m, path: None if _litter(m.name) else tarfile.data_filter(m, path))


def fetch(p: Package) -> Path:
    """The extracted package root (verified); downloads and extracts on first use."""
    archives = EVAL_CACHE / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    archive = archives / p.archive_name
    if not archive.exists():
        _download(p, archive)
    digest = sha256_of(archive)
    if digest != p.sha256:
        raise PackageError(
            f"{p.key}: {archive} has sha256 {digest}, packages.toml pins {p.sha256} (delete it to download again)"
        )
    extracted = EVAL_CACHE / "src" / p.key
    marker = extracted / ".ghostline-eval-sha256"
    if not (marker.exists() and marker.read_text().strip() == p.sha256):
        if extracted.exists():
            shutil.rmtree(extracted)
        tmp = extracted.with_name(extracted.name + ".part")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        extract(archive, tmp)
        tmp.rename(extracted)
        marker.write_text(p.sha256 + "\n")
    root = extracted / p.root
    if not (root / (p.source or ".")).is_dir():
        raise PackageError(f"{p.key}: no {p.root}/{p.source} in {archive}")
    return root


if __name__ == "__main__":
    # `python tests/eval/packages.py`: fetch (or check) every pinned package, e.g. before tests
    # that read them (lsp-server/tests/redaction_false_positives.rs).
    for package in load():
        print(f"[packages] {package.key}: {fetch(package)}")
