#!/usr/bin/env python3
"""Fetches MQTT.js's browser bundle (dist/mqtt.min.js of the npm package `mqtt`) at a pinned
version, for tests/python/test_browser_mqttjs.py.

Uses only the Python standard library (no node, npm or curl): downloads the package tarball
from the npm registry, checks it against the registry's `integrity` value (sha512) before
reading it, and extracts that one file. Does nothing when the file is already there.

    python3 tests/tools/fetch_mqttjs.py [DEST]    # DEST defaults to .venv/mqttjs/mqtt.min.js
"""

import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "5.16.0"
URL = f"https://registry.npmjs.org/mqtt/-/mqtt-{VERSION}.tgz"
INTEGRITY = (
    "sha512-G0VsEtuJz5sJUgZJaaADMVfW7SIFPzkIuHR+d6rk+tBeSwdCfd9BaIRycRfd2AbyFDEmLlFM+SDQeti/+IbOnw=="
)
MEMBER = "package/dist/mqtt.min.js"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DEST = REPO / ".venv" / "mqttjs" / "mqtt.min.js"


def check_integrity(data, integrity):
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise ValueError(f"unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise ValueError(f"{URL}: sha512 is {actual}, the pinned integrity says {expected}")


def fetch(dest=DEFAULT_DEST):
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    with urllib.request.urlopen(URL, timeout=60) as response:
        data = response.read()
    check_integrity(data, INTEGRITY)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.getmember(MEMBER)
        if not member.isfile():
            raise ValueError(f"{URL}: {MEMBER} is not a regular file")
        script = tar.extractfile(member).read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the destination, then renamed: a run cut short leaves no partial file.
    partial = dest.with_name(dest.name + ".part")
    partial.write_bytes(script)
    os.replace(partial, dest)
    return dest


def main(argv):
    if len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    dest = fetch(argv[1] if len(argv) == 2 else DEFAULT_DEST)
    print(f"MQTT.js {VERSION}: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
