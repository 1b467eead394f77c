"""The evaluation's code: pinned crates.io / PyPI archives, downloaded once into the cache,
checked against their sha256 every run, extracted next to them."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
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
    language: str  # "rust" | "python"
    url: str
    sha256: str
    root: str
    source: str
    smoke: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def extension(self) -> str:
        return ".rs" if self.language == "rust" else ".py"

    @property
    def archive_name(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name


def load(path: Path = HERE / "packages.toml") -> list[Package]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    packages = [Package(**entry) for entry in data["package"]]
    for p in packages:
        if p.language not in ("rust", "python"):
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
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(extracted)
        marker.write_text(p.sha256 + "\n")
    root = extracted / p.root
    if not (root / p.source).is_dir():
        raise PackageError(f"{p.key}: no {p.root}/{p.source} in {archive}")
    return root


if __name__ == "__main__":
    # `python tests/eval/packages.py`: fetch (or check) every pinned package, e.g. before tests
    # that read them (lsp-server/tests/redaction_false_positives.rs).
    for package in load():
        print(f"[packages] {package.key}: {fetch(package)}")
