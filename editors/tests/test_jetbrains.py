"""JetBrains (LSP4IJ): the template files parse, have LSP4IJ's template fields, name only
settings that ghostline-lsp knows, and the real ghostline-lsp configured exactly as the
template configures it answers inline and plain completion from the real backend. No
JetBrains IDE runs here."""
from __future__ import annotations

import fnmatch
import json

from harness import EDITORS, Backend, LspClient, apply_edit, lsp_setting_names, test

TEMPLATE = EDITORS / "jetbrains" / "lsp4ij-template"


def load(name: str):
    return json.loads((TEMPLATE / name).read_text())


@test
def template_files_parse_and_match_the_lsp():
    template = load("template.json")
    assert template["id"] == "ghostline" and template["name"]
    assert template["programArgs"]["default"].split()[0] == "ghostline-lsp"
    mappings = template["fileTypeMappings"]
    assert len(mappings) >= 10
    seen = set()
    for mapping in mappings:
        patterns = mapping["fileType"]["patterns"]
        assert patterns and all(p.startswith("*.") for p in patterns), mapping
        assert mapping["languageId"], mapping
        assert not seen & set(patterns), f"pattern mapped twice: {seen & set(patterns)}"
        seen |= set(patterns)
    known = lsp_setting_names()
    assert not set(load("initializationOptions.json")) - known
    settings = load("settings.json")
    assert not set(settings.get("ghostline", settings)) - known
    assert (TEMPLATE / "README.md").exists()


def language_id_for(filename: str) -> str:
    for mapping in load("template.json")["fileTypeMappings"]:
        if any(fnmatch.fnmatch(filename, p) for p in mapping["fileType"]["patterns"]):
            return mapping["languageId"]
    raise AssertionError(f"no mapping for {filename}")


@test
def lsp_configured_as_the_template_answers():
    backend = Backend.shared()
    options = load("initializationOptions.json")
    options["backendUrl"] = "http://127.0.0.1:9"  # replaced by the settings below
    settings = load("settings.json")
    settings["ghostline"]["backendUrl"] = backend.url
    settings["ghostline"]["timeoutMs"] = 60000  # generous bound for the CPU model
    client = LspClient()
    try:
        client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {
            "general": {"positionEncodings": ["utf-16"]},
            "textDocument": {"inlineCompletion": {"dynamicRegistration": False}, "completion": {}},
        }, "initializationOptions": options, "clientInfo": {"name": "LSP4IJ"}})
        client.notify("initialized", {})
        client.notify("workspace/didChangeConfiguration", {"settings": settings})
        uri = "file:///tmp/ghostline-jetbrains/add.py"
        text = 'def add(a, b):\n    return \n\n\nif __name__ == "__main__":\n    print(add(1, 2))\n'
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language_id_for("add.py"), "version": 1, "text": text}})
        position = {"line": 1, "character": len("    return ")}
        inline = client.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}}, timeout=90)
        items = inline["items"] if isinstance(inline, dict) else inline
        assert items and "a + b" in items[0]["insertText"], inline
        edit = {"range": items[0]["range"], "newText": items[0]["insertText"]}
        assert apply_edit(text, edit).split("\n")[1].startswith("    return a + b")
        assert items[0]["command"]["command"] == "ghostline.accept"
        client.request("workspace/executeCommand", {"command": "ghostline.accept",
                                                    "arguments": items[0]["command"]["arguments"]})
        plain = client.request("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": position}, timeout=90)
        plain_items = plain["items"] if isinstance(plain, dict) else plain
        assert plain_items and "a + b" in plain_items[0]["textEdit"]["newText"], plain
    finally:
        client.close()
