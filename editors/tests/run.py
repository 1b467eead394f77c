"""Runs every editor test; ends with `N passed, M failed`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

if __name__ == "__main__":
    modules = sys.argv[1:] or ["test_nvim", "test_helix", "test_jetbrains", "test_vscode"]
    sys.exit(harness.main(modules))
