"""The domain packages stay off the wire: wire decoding is services/' alone.

library/ and sync/ receive plain values (library/upload_stream.py) and import
neither grpc nor protobuf messages. grpc itself is still loaded beside them,
through errors.py, whose exceptions carry their gRPC status.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
DOMAIN = ("library", "sync")
WIRE = ("grpc", "grpc_", "google.protobuf", "musicsync.proto", "musicsync.services")

# Imports every module of the domain packages, noting each import statement they run
# (a module already loaded by another is still noted), and what got loaded.
PROBE = """
import builtins, importlib, importlib.util, json, pkgutil, sys
real_import = builtins.__import__
named = []

def noting(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if importer.startswith(("musicsync.library", "musicsync.sync")):
        base = (importlib.util.resolve_name("." * level + name, globals["__package__"])
                if level else name)
        named.extend([(importer, base)] + [(importer, base + "." + f) for f in fromlist or ()])
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = noting
modules = []
for package in ("musicsync.library", "musicsync.sync"):
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        modules.append(info.name)
        importlib.import_module(info.name)
print(json.dumps({"modules": modules, "named": named, "loaded": sorted(sys.modules)}))
"""


def _is_wire(name: str) -> bool:
    return any(name == w or name.startswith(w if w.endswith("_") else w + ".")
               for w in WIRE)


def test_the_domain_packages_run_no_import_of_grpc_or_protobuf_messages():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                            text=True, timeout=120, check=True)
    seen = json.loads(result.stdout)
    assert "musicsync.library.uploads" in seen["modules"]
    assert "musicsync.sync.feed" in seen["modules"]
    assert [pair for pair in seen["named"] if _is_wire(pair[1])] == []
    # No protobuf message class came along with them either.
    assert [m for m in seen["loaded"] if m.startswith(("musicsync.proto", "google.protobuf",
                                                      "musicsync.services"))] == []


def test_no_module_of_the_domain_packages_names_grpc_or_protobuf_even_in_a_function():
    # The probe above sees the imports a module runs when loaded; this sees those
    # deferred into functions too.
    found = []
    for package in DOMAIN:
        for path in sorted((SRC / "musicsync" / package).rglob("*.py")):
            module = ".".join(path.relative_to(SRC).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    anchor = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rsplit(".", 1)[0]
                    base = (f"{anchor}.{node.module}" if node.module else anchor) \
                        if node.level else node.module
                    names = [base] + [f"{base}.{alias.name}" for alias in node.names]
                else:
                    continue
                found += [(module, name) for name in names if _is_wire(name)]
    assert found == []
