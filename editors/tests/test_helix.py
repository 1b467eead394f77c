"""Helix: editors/helix/languages.toml parses, names only ghostline-lsp's real settings, and
the completion path it relies on (Helix draws no ghost text) answers over real stdio from the
real ghostline-lsp, configured exactly as the file configures it, against the real backend.
Helix itself is not run here (no Helix on this machine)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from harness import EDITORS, Backend, LspClient, apply_edit, lsp_setting_names, test

TOML = EDITORS / "helix" / "languages.toml"


def helix_config() -> dict:
    with TOML.open("rb") as f:
        return tomllib.load(f)


@test
def languages_toml_parses_and_adds_ghostline_everywhere():
    config = helix_config()
    server = config["language-server"]["ghostline"]
    assert server["command"] == "ghostline-lsp"
    unknown = set(server.get("config", {})) - lsp_setting_names()
    assert not unknown, f"settings ghostline-lsp does not know: {unknown}"
    languages = config["language"]
    names = [lang["name"] for lang in languages]
    assert len(names) == len(set(names)), names
    for wanted in ("python", "rust", "go", "typescript", "javascript", "c", "cpp", "java"):
        assert wanted in names, wanted
    for lang in languages:
        servers = lang["language-servers"]
        assert servers[-1] == "ghostline", lang
        # Helix replaces the list: the language's own server must stay in it.
        assert len(servers) >= 2, lang


# Roughly what Helix 25.x sends in `initialize`.
HELIX_CAPABILITIES = {
    "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]},
    "textDocument": {
        "completion": {
            "completionItem": {"snippetSupport": True, "resolveSupport": {"properties": ["documentation", "detail", "additionalTextEdits"]}, "insertReplaceSupport": True, "deprecatedSupport": True, "tagSupport": {"valueSet": [1]}},
            "completionItemKind": {},
        },
    },
    "workspace": {"configuration": True, "executeCommand": {"dynamicRegistration": False}},
}


@test
def completion_item_as_helix_asks_for_it():
    backend = Backend.shared()
    options = dict(helix_config()["language-server"]["ghostline"]["config"])
    options["backendUrl"] = backend.url
    options["timeoutMs"] = 60000  # a generous bound for the CPU model, not a speed check
    client = LspClient()
    try:
        init = client.request("initialize", {
            "processId": None, "rootUri": None, "capabilities": HELIX_CAPABILITIES,
            "initializationOptions": options,
            "clientInfo": {"name": "helix", "version": "25.07"},
        })
        assert init["capabilities"].get("completionProvider") is not None, init
        client.notify("initialized", {})
        uri = "file:///tmp/ghostline-helix/add.py"
        # The user has typed "re" (Helix asks after `completion-trigger-len` characters).
        text = 'def add(a, b):\n    re\n\n\nif __name__ == "__main__":\n    print(add(1, 2))\n'
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 0, "text": text}})
        result = client.request("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": {"line": 1, "character": 6},
            "context": {"triggerKind": 1},
        }, timeout=90)
        items = result["items"] if isinstance(result, dict) else result
        assert len(items) == 1, result
        item = items[0]
        edit = item["textEdit"]
        # The edit starts at the word being typed, so Helix's filter keeps the item.
        assert edit["range"]["start"] == {"line": 1, "character": 4}, edit
        assert item["filterText"].startswith("re"), item
        after = apply_edit(text, edit)
        assert after.split("\n")[1].startswith("    return a + b"), after
        assert after.split("\n")[2:] == text.split("\n")[2:], after
        # Accepting runs the item's command, if any, like Helix does.
        if item.get("command"):
            client.request("workspace/executeCommand", {"command": item["command"]["command"], "arguments": item["command"].get("arguments", [])})
    finally:
        client.close()
