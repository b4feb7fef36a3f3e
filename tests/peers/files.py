#!/usr/bin/env python3
"""Writes the files that tests/peers.rs fetches from real servers, and their MANIFEST.

    python3 tests/peers/files.py DIR

The content is pseudo-random from a fixed seed, so a failure can be reproduced byte for byte.
MANIFEST has one line per file, `name size crc32 sha256` (crc32 as zlib computes it, in hex);
the tests read the files from DIR, check them against the size and CRC-32, and compare every
body they fetch with them byte for byte. The sha256 is for people and `sha256sum`.
"""

import hashlib
import os
import random
import sys
import zlib

SEED = 20240605

# Around the edges a client gets wrong: empty, one byte, a small body, one byte under and at a
# page, a typical read buffer, a megabyte and a bit, and a body far larger than any buffer.
SIZES = [0, 1, 13, 4095, 4096, 65536, (1 << 20) + 7, 16 << 20]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: files.py DIR")
    root = sys.argv[1]
    rng = random.Random(SEED)
    files = [(f"f{size}.bin", rng.randbytes(size)) for size in SIZES]
    # A subdirectory, for the directory listings and the redirect from /sub to /sub/.
    files.append(("sub/hello.txt", b"hello from a subdirectory\n"))
    lines = [f"# volley peer files, seed {SEED}: name size crc32 sha256"]
    for name, data in files:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        crc = zlib.crc32(data) & 0xFFFFFFFF
        lines.append(f"{name} {len(data)} {crc:08x} {hashlib.sha256(data).hexdigest()}")
    with open(os.path.join(root, "MANIFEST"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
