"""Checks the MSRV: every workspace package declares the same `rust-version`, and no package in
the resolved dependency graph (Cargo.lock, every feature, every target) declares a higher one.
Run from the repository root; exits 1 and names the offenders otherwise."""
import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"]
    )
)
members = set(meta["workspace_members"])
resolved = {node["id"] for node in meta["resolve"]["nodes"]}
ours = {p["name"]: p.get("rust_version") for p in meta["packages"] if p["id"] in members}
declared = set(ours.values())
if None in declared or len(declared) != 1:
    sys.exit(f"error: the workspace packages must declare one rust-version: {ours}")
msrv = declared.pop()
above = sorted(
    (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in resolved
    and p["id"] not in members
    and p.get("rust_version")
    and version(p["rust_version"]) > version(msrv)
)
if above:
    print(f"error: these locked dependencies need a newer Rust than our rust-version {msrv}:")
    for name, ver, rv in above:
        print(f"  {name} {ver} needs {rv}")
    sys.exit(1)
highest = max(
    (version(p["rust_version"]), p["name"])
    for p in meta["packages"]
    if p["id"] in resolved and p["id"] not in members and p.get("rust_version")
)
print(f"MSRV {msrv}: no locked dependency needs more (the highest: {highest[1]}, {'.'.join(map(str, highest[0]))})")
