"""Generate the Python gRPC code in src/musicsync/proto from protos/.

`python scripts/gen_protos.py` rewrites the committed code; `--check` only
compares a fresh generation with it and exits 1 (naming the files) on any
difference, so CI catches .proto edits that were not regenerated.

protoc writes `import auth_pb2`-style absolute imports that only work with the
output folder on sys.path; they are rewritten to package-relative imports so
`musicsync.proto` imports like any other subpackage.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
OUT_DIR = ROOT / "src" / "musicsync" / "proto"
INIT = '"""Generated gRPC code for protos/ (make protos); do not edit."""\n'
_LOCAL_IMPORT = re.compile(r"^import (\w+_pb2(?:_grpc)?)( as \w+)?$", re.MULTILINE)


def generate(out: Path) -> None:
    protos = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out.glob("*_pb2*.py*"):
        path.write_text(_LOCAL_IMPORT.sub(r"from . import \1\2", path.read_text()))
    (out / "__init__.py").write_text(INIT)


def differences(fresh: Path, committed: Path) -> list[str]:
    fresh_names = {p.name for p in fresh.iterdir()}
    committed_names = {p.name for p in committed.glob("*.py*")} if committed.exists() else set()
    changed = sorted(fresh_names ^ committed_names)
    for name in sorted(fresh_names & committed_names):
        if not filecmp.cmp(fresh / name, committed / name, shallow=False):
            changed.append(name)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, change nothing")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        changed = differences(fresh, OUT_DIR)
        if options.check:
            if changed:
                print("generated code is stale, run `make protos`: " + ", ".join(changed))
                return 1
            print("generated code matches protos/")
            return 0
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for stale in OUT_DIR.glob("*.py*"):
            stale.unlink()
        for path in fresh.iterdir():
            shutil.copy2(path, OUT_DIR / path.name)
        print(f"generated {len(list(fresh.iterdir()))} files in {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
