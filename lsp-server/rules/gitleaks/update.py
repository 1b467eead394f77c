#!/usr/bin/env python3
"""Updates the vendored gitleaks rule set (MIT, see LICENSE here).

    python3 lsp-server/rules/gitleaks/update.py              # download the newest config from GitHub
    python3 lsp-server/rules/gitleaks/update.py --ref v8.28.0
    python3 lsp-server/rules/gitleaks/update.py --from path/to/gitleaks.toml   # offline

Writes `gitleaks.toml` (the upstream file, unchanged), `LICENSE`, and `rules.json`: the same
rules in the form ghostline-lsp embeds at build time (`include_str!`, parsed with serde_json;
no TOML parser in the binary): id, regex, secretGroup, entropy, keywords, and each rule's
allowlists (regexes / stopwords / regexTarget / condition). Path-only rules (file names), rules
limited to some paths (`path`, listed as `skipped_path_scoped`) and path allowlists are dropped: the LSP excludes files by name in `privacy/excludes.rs`. Stdlib
only (Python 3.11+ for tomllib).
"""

import argparse
import json
import tomllib
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = "https://raw.githubusercontent.com/gitleaks/gitleaks/{ref}/{path}"


def fetch(ref: str, path: str) -> bytes:
    with urllib.request.urlopen(RAW.format(ref=ref, path=path), timeout=60) as response:
        return response.read()


def convert(config: dict, source: str) -> dict:
    rules = []
    path_scoped = []
    for rule in config["rules"]:
        if "regex" not in rule:
            continue
        if "path" in rule:
            # Applied by gitleaks to some file names only (`*.tf`, ...); a prompt's text has no
            # name here, and out of their files these rules fire on ordinary code.
            path_scoped.append(rule["id"])
            continue
        allowlists = []
        for allow in rule.get("allowlists", []):
            entry = {k: allow[k] for k in ("regexes", "stopwords", "regexTarget", "condition") if k in allow}
            if "regexes" in entry or "stopwords" in entry:
                allowlists.append(entry)
        rules.append({
            "id": rule["id"],
            "regex": rule["regex"],
            "secretGroup": rule.get("secretGroup", 0),
            "entropy": rule.get("entropy", 0.0),
            "keywords": [k.lower() for k in rule.get("keywords", [])],
            "allowlists": allowlists,
        })
    glob = config.get("allowlist", {})
    return {
        "source": source,
        "minVersion": config.get("minVersion"),
        "allowlist": {"regexes": glob.get("regexes", []), "stopwords": glob.get("stopwords", [])},
        "rules": rules,
        "skipped_path_scoped": path_scoped,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="master")
    ap.add_argument("--from", dest="from_file", type=Path, help="a local gitleaks.toml instead of downloading")
    ap.add_argument("--source", help="what to record as the source (default: the URL or the file)")
    args = ap.parse_args()
    if args.from_file:
        raw = args.from_file.read_bytes()
        source = args.source or str(args.from_file)
    else:
        raw = fetch(args.ref, "config/gitleaks.toml")
        (HERE / "LICENSE").write_bytes(fetch(args.ref, "LICENSE"))
        source = args.source or RAW.format(ref=args.ref, path="config/gitleaks.toml")
    config = tomllib.loads(raw.decode())
    (HERE / "gitleaks.toml").write_bytes(raw)
    out = convert(config, source)
    (HERE / "rules.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(out['rules'])} rules from {source} ({len(out['skipped_path_scoped'])} path-scoped rules left out)")


if __name__ == "__main__":
    main()
