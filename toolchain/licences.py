"""Lists the licence of every Go module linked into the binaries of one directory; fails on the AGPL.

Reads `go version -m` (the module list the linker recorded) and each module's licence file in the
module cache. Exit 1 names the modules under the AGPL or with no recognisable licence file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

KNOWN = [
    ("AGPL", re.compile(r"GNU AFFERO GENERAL PUBLIC LICENSE", re.I)),
    ("Apache-2.0", re.compile(r"Apache License,?\s+Version 2\.0", re.I)),
    ("MPL-2.0", re.compile(r"Mozilla Public License,? (Version|v\.) ?2\.0", re.I)),
    ("BSD", re.compile(r"Redistribution and use in source and binary forms", re.I)),
    ("MIT", re.compile(r"Permission is hereby granted, free of charge", re.I)),
    ("ISC", re.compile(r"Permission to use, copy, modify, and(/or)? distribute this software", re.I)),
    ("CC0/Unlicense", re.compile(r"(CC0|unlicense|dedicate[sd]? .* public domain)", re.I)),
]
LICENCE_FILE = re.compile(r"^(UN)?(LICEN[CS]E|COPYING)", re.I)
# Read by hand: modules whose zip carries no licence file, with what their README says.
REVIEWED = {
    "github.com/sourcegraph/appdash-data": "MIT (README: 'under the Appdash License', which github.com/pulumi/appdash carries: MIT)",
    "github.com/mattn/go-localereader": "MIT (README: 'License: MIT')",
}


def escape(path: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


def modules(binary: Path) -> list[tuple[str, str]]:
    out = subprocess.run(["go", "version", "-m", str(binary)], check=True, capture_output=True, text=True).stdout
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod" and parts[2] == "(devel)":
            continue  # the throwaway wrapper module of toolchain/build.sh, or this project's own code
        if len(parts) >= 3 and parts[0] in ("mod", "dep"):
            found[parts[1]] = (parts[1], parts[2])
        elif len(parts) >= 3 and parts[0] == "=>" and parts[2].startswith("v"):
            last = list(found)[-1]
            found[last] = (parts[1], parts[2])
    return sorted(found.values())


def classify(module: str, version: str, modcache: Path) -> str:
    if module in REVIEWED:
        return REVIEWED[module]
    path = module
    while path:
        directory = modcache / f"{escape(path)}@{version}"
        if directory.is_dir():
            texts = [f.read_text(errors="replace") for f in sorted(directory.iterdir()) if f.is_file() and LICENCE_FILE.match(f.name)]
            for name, pattern in KNOWN:
                if any(pattern.search(t) for t in texts):
                    return name
            return "unrecognised" if texts else "no licence file"
        if "/" not in path:
            break
        path = path.rsplit("/", 1)[0]
    return "not in module cache"


def main(directory: str) -> int:
    modcache = Path(
        os.environ.get("GOMODCACHE")
        or subprocess.run(["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True).stdout.strip()
    )
    bad = []
    seen: dict[tuple[str, str], str] = {}
    for binary in sorted(Path(directory).iterdir()):
        if binary.is_file() and binary.read_bytes()[:4] == b"\x7fELF":
            for module, version in modules(binary):
                if (module, version) not in seen:
                    seen[(module, version)] = classify(module, version, modcache)
    for (module, version), licence in sorted(seen.items()):
        print(f"{module} {version} {licence}")
        if licence == "AGPL":
            bad.append(f"{module}@{version}")
        elif licence not in dict(KNOWN) and module not in REVIEWED:
            print(f"toolchain: check by hand: {module}@{version}: {licence}", file=sys.stderr)
    if bad:
        print("toolchain: AGPL modules linked: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
