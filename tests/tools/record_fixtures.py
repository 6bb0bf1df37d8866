#!/usr/bin/env python3
"""Fake MQTT server that records the exact bytes real clients send.

Stdlib only.  Two modes:

  Record (default):
      record_fixtures.py --port 18830 --out FILE [--comment TEXT ...]
                         [--publish QOS TOPIC PAYLOAD ...] [--publish-retain]
                         [--publish-user-prop KEY VALUE] [--topic-alias-max N]
                         [--max-connections N] [--timeout SECS]
                         [-- CLIENT COMMAND ...]

    Listens on 127.0.0.1:PORT, frames every incoming byte stream into MQTT
    control packets (fixed header byte + remaining-length varint) and writes
    one line per packet:  "c2s <hex>" for client-to-server and "s2c <hex>"
    for packets this fake server sent.  The server answers just enough for
    clients to finish their normal flow (CONNACK, SUBACK, PUBACK, PUBREC /
    PUBCOMP, UNSUBACK, PINGRESP), and can push scripted PUBLISH packets to a
    subscriber after its first SUBACK so that the client's PUBACK / PUBREC /
    PUBCOMP are recorded too (the server answers PUBREC with PUBREL).

    If a client command is given after "--", it is started once the server
    listens, killed after --timeout seconds, and recording stops when it
    exits.  The file is only written when the client exited with 0 (or a
    status named by --ok-rc) and the c2s packet types named by --expect were
    seen in order; otherwise the exit status is non-zero so the caller can
    retry.  Otherwise recording stops after --max-connections connections have
    closed, or after --timeout seconds.

  Check:
      record_fixtures.py --check DIR_OR_FILE ...

    Verifies every fixture line is exactly one complete MQTT packet whose
    remaining length matches, with legal fixed-header flags, and that the
    variable header / payload of each packet type parses completely.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys

# Packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
DISCONNECT, AUTH = 14, 15

TYPE_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
    6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK",
    10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
    14: "DISCONNECT", 15: "AUTH",
}

MAX_PACKET = 1 << 20  # fixtures are tiny; refuse anything absurd


# --------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------

def encode_varint(n):
    if n < 0 or n > 268435455:
        raise ValueError("varint out of range: %d" % n)
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def encode_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return len(b).to_bytes(2, "big") + b


def packet(first_byte, body):
    return bytes([first_byte]) + encode_varint(len(body)) + body


def try_frame(buf):
    """Return (packet_bytes, consumed) for the first complete packet in buf,
    or (None, 0) if more data is needed.  Raises ValueError on a malformed
    remaining length."""
    if len(buf) < 2:
        return None, 0
    mult, value, i = 1, 0, 1
    while True:
        if i >= len(buf):
            return None, 0
        if i > 4:
            raise ValueError("remaining length longer than 4 bytes")
        b = buf[i]
        value += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    if value > MAX_PACKET:
        raise ValueError("packet too large: %d" % value)
    total = i + value
    if len(buf) < total:
        return None, 0
    return bytes(buf[:total]), total


# --------------------------------------------------------------------------
# Decoding (used by the server for replies and by --check)
# --------------------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("truncated: need %d bytes at offset %d of %d"
                             % (n, self.pos, len(self.data)))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return int.from_bytes(self.take(2), "big")

    def u32(self):
        return int.from_bytes(self.take(4), "big")

    def varint(self):
        mult, value = 1, 0
        for _ in range(4):
            b = self.u8()
            value += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                return value
        raise ValueError("varint longer than 4 bytes")

    def binary(self):
        return self.take(self.u16())

    def string(self):
        return self.binary().decode("utf-8")


# MQTT v5 property identifiers -> value kind
PROP_KINDS = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin",
    0x0B: "varint", 0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str",
    0x16: "bin", 0x17: "byte", 0x18: "u32", 0x19: "byte", 0x1A: "str",
    0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16",
    0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte",
    0x29: "byte", 0x2A: "byte",
}


def read_properties(r):
    length = r.varint()
    sub = Reader(r.take(length))
    props = []
    while sub.remaining():
        ident = sub.varint()
        kind = PROP_KINDS.get(ident)
        if kind is None:
            raise ValueError("unknown property id 0x%02x" % ident)
        if kind == "byte":
            val = sub.u8()
        elif kind == "u16":
            val = sub.u16()
        elif kind == "u32":
            val = sub.u32()
        elif kind == "varint":
            val = sub.varint()
        elif kind == "str":
            val = sub.string()
        elif kind == "bin":
            val = sub.binary()
        else:
            val = (sub.string(), sub.string())
        props.append((ident, val))
    return props


def parse_connect(body):
    """Return dict with protocol info; raises on malformed."""
    r = Reader(body)
    name = r.string()
    level = r.u8()
    if (name, level) not in (("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)):
        raise ValueError("unexpected protocol %r level %d" % (name, level))
    flags = r.u8()
    if flags & 0x01:
        raise ValueError("CONNECT reserved flag set")
    r.u16()  # keepalive
    if level == 5:
        read_properties(r)
    r.string()  # client id
    if flags & 0x04:
        if level == 5:
            read_properties(r)  # will properties
        r.string()  # will topic
        r.binary()  # will payload
    if flags & 0x80:
        r.string()
    if flags & 0x40:
        r.binary()
    if r.remaining():
        raise ValueError("%d trailing bytes in CONNECT" % r.remaining())
    return {"name": name, "level": level, "flags": flags}


def check_packet(pkt, version):
    """Structurally validate one whole packet (bytes).  version is the
    protocol level (3, 4 or 5) seen in the connection's CONNECT, or None.
    Returns (type, protocol level if CONNECT else None)."""
    framed, used = try_frame(pkt)
    if framed is None or used != len(pkt):
        raise ValueError("not exactly one complete packet (remaining length "
                         "mismatch)")
    first = pkt[0]
    ptype, flags = first >> 4, first & 0x0F
    hdr_len = 1
    while pkt[hdr_len] & 0x80:
        hdr_len += 1
    hdr_len += 1
    body = pkt[hdr_len:]
    r = Reader(body)
    v5 = version == 5

    if ptype == 0:
        raise ValueError("reserved packet type 0")
    if ptype in (PUBREL, SUBSCRIBE, UNSUBSCRIBE):
        if flags != 0x2:
            raise ValueError("%s must have flags 0010" % TYPE_NAMES[ptype])
    elif ptype != PUBLISH and flags != 0:
        raise ValueError("%s must have flags 0000" % TYPE_NAMES[ptype])

    if ptype == CONNECT:
        info = parse_connect(body)
        return ptype, info["level"]
    if ptype == CONNACK:
        r.u8()
        r.u8()
        if v5:
            read_properties(r)
    elif ptype == PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise ValueError("PUBLISH with QoS 3")
        r.string()
        if qos:
            if r.u16() == 0:
                raise ValueError("packet id 0")
        if v5:
            read_properties(r)
        r.take(r.remaining())  # payload
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        if r.u16() == 0:
            raise ValueError("packet id 0")
        if v5 and r.remaining():
            r.u8()
            if r.remaining():
                read_properties(r)
    elif ptype == SUBSCRIBE:
        r.u16()
        if v5:
            read_properties(r)
        n = 0
        while r.remaining():
            r.string()
            opts = r.u8()
            if (opts & 3) == 3 or (not v5 and opts & 0xFC) or (v5 and opts & 0xC0):
                raise ValueError("bad subscription options 0x%02x" % opts)
            n += 1
        if not n:
            raise ValueError("SUBSCRIBE without filters")
    elif ptype == SUBACK:
        r.u16()
        if v5:
            read_properties(r)
        if not r.remaining():
            raise ValueError("SUBACK without return codes")
        r.take(r.remaining())
    elif ptype == UNSUBSCRIBE:
        r.u16()
        if v5:
            read_properties(r)
        n = 0
        while r.remaining():
            r.string()
            n += 1
        if not n:
            raise ValueError("UNSUBSCRIBE without filters")
    elif ptype == UNSUBACK:
        r.u16()
        if v5:
            read_properties(r)
            r.take(r.remaining())
    elif ptype in (PINGREQ, PINGRESP):
        pass
    elif ptype in (DISCONNECT, AUTH):
        if v5 and r.remaining():
            r.u8()
            if r.remaining():
                read_properties(r)
    if r.remaining():
        raise ValueError("%d trailing bytes in %s" % (r.remaining(),
                                                      TYPE_NAMES[ptype]))
    return ptype, None


def check_file(path):
    """Return list of error strings (empty when fine) and packet type counts."""
    errors = []
    counts = {}
    version = None
    seen_packet = False
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            errors.append("%s:%d: blank line" % (path, lineno))
            continue
        if line.startswith("#"):
            if seen_packet:
                errors.append("%s:%d: comment after packets" % (path, lineno))
            continue
        seen_packet = True
        parts = line.split(" ")
        if len(parts) != 2 or parts[0] not in ("c2s", "s2c"):
            errors.append("%s:%d: expected 'c2s|s2c <hex>'" % (path, lineno))
            continue
        hx = parts[1]
        if hx != hx.lower() or len(hx) % 2:
            errors.append("%s:%d: hex must be lowercase, even length"
                          % (path, lineno))
            continue
        try:
            pkt = bytes.fromhex(hx)
            ptype, level = check_packet(pkt, version)
            if level is not None:
                version = level
            key = (parts[0], TYPE_NAMES[ptype])
            counts[key] = counts.get(key, 0) + 1
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            errors.append("%s:%d: %s" % (path, lineno, e))
    if not seen_packet:
        errors.append("%s: no packets" % path)
    return errors, counts, version


def run_check(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files.extend(sorted(os.path.join(p, n) for n in os.listdir(p)
                                if n.endswith(".txt")))
        else:
            files.append(p)
    total_errors = 0
    for path in files:
        errors, counts, version = check_file(path)
        summary = ", ".join("%s %s x%d" % (d, t, n)
                            for (d, t), n in sorted(counts.items()))
        status = "OK " if not errors else "BAD"
        print("%s %s [v%s] %s" % (status, os.path.basename(path), version,
                                  summary))
        for e in errors:
            print("    " + e)
        total_errors += len(errors)
    print("%d files, %d errors" % (len(files), total_errors))
    return 1 if total_errors or not files else 0


# --------------------------------------------------------------------------
# Fake server
# --------------------------------------------------------------------------

class Recorder:
    def __init__(self, out_path, comments):
        self.out_path = out_path
        self.comments = comments
        self.lines = []

    def log(self, direction, pkt):
        self.lines.append("%s %s" % (direction, pkt.hex()))

    def write(self):
        text = "".join("# %s\n" % c for c in self.comments)
        text += "".join(l + "\n" for l in self.lines)
        if self.out_path in (None, "-"):
            sys.stdout.write(text)
        else:
            tmp = self.out_path + ".tmp"
            with open(tmp, "w", encoding="ascii") as f:
                f.write(text)
            os.replace(tmp, self.out_path)


class Session:
    def __init__(self, server, reader, writer):
        self.server = server
        self.opts = server.opts
        self.rec = server.recorder
        self.reader = reader
        self.writer = writer
        self.version = 4
        self.next_pid = 1
        self.scripted_sent = False

    def send(self, pkt):
        self.rec.log("s2c", pkt)
        self.writer.write(pkt)

    def v5(self):
        return self.version == 5

    async def run(self):
        buf = bytearray()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                buf += data
                while True:
                    pkt, used = try_frame(buf)
                    if pkt is None:
                        break
                    del buf[:used]
                    self.rec.log("c2s", pkt)
                    if not self.handle(pkt):
                        await self.writer.drain()
                        return
                await self.writer.drain()
        except (ConnectionError, ValueError) as e:
            print("record_fixtures: connection ended: %s" % e, file=sys.stderr)
        finally:
            if buf:
                print("record_fixtures: %d unframed bytes left: %s"
                      % (len(buf), bytes(buf).hex()), file=sys.stderr)
            try:
                self.writer.close()
            except Exception:
                pass

    def handle(self, pkt):
        """Reply to one client packet; return False to close the connection."""
        first = pkt[0]
        ptype, flags = first >> 4, first & 0x0F
        r = Reader(pkt)
        r.take(1)
        r.varint()
        body = r.take(r.remaining())
        br = Reader(body)

        if ptype == CONNECT:
            info = parse_connect(body)
            self.version = info["level"]
            if self.v5():
                props = b""
                if self.opts.topic_alias_max:
                    props += b"\x22" + self.opts.topic_alias_max.to_bytes(2, "big")
                self.send(packet(0x20, b"\x00\x00" + encode_varint(len(props))
                                 + props))
            else:
                self.send(packet(0x20, b"\x00\x00"))
        elif ptype == PUBLISH:
            qos = (flags >> 1) & 3
            br.string()
            if qos == 1:
                self.send(packet(0x40, br.take(2)))
            elif qos == 2:
                self.send(packet(0x50, br.take(2)))
        elif ptype == PUBREL:
            self.send(packet(0x70, br.take(2)))
        elif ptype == PUBREC:
            # client acknowledging our scripted QoS 2 publish
            self.send(packet(0x62, br.take(2)))
        elif ptype in (PUBACK, PUBCOMP):
            pass
        elif ptype == SUBSCRIBE:
            pid = br.take(2)
            if self.v5():
                read_properties(br)
            codes = bytearray()
            while br.remaining():
                br.string()
                codes.append(br.u8() & 0x03)
            props = b"\x00" if self.v5() else b""
            self.send(packet(0x90, pid + props + bytes(codes)))
            if not self.scripted_sent:
                self.scripted_sent = True
                self.send_scripted()
        elif ptype == UNSUBSCRIBE:
            pid = br.take(2)
            if self.v5():
                read_properties(br)
                n = 0
                while br.remaining():
                    br.string()
                    n += 1
                self.send(packet(0xB0, pid + b"\x00" + b"\x00" * n))
            else:
                self.send(packet(0xB0, pid))
        elif ptype == PINGREQ:
            self.send(b"\xd0\x00")
        elif ptype == DISCONNECT:
            return False
        return True

    def send_scripted(self):
        for qos, topic, payload in self.opts.publish or []:
            qos = int(qos)
            first = 0x30 | (qos << 1) | (1 if self.opts.publish_retain else 0)
            body = encode_str(topic)
            if qos:
                body += self.next_pid.to_bytes(2, "big")
                self.next_pid += 1
            if self.v5():
                props = b""
                for k, v in self.opts.publish_user_prop or []:
                    props += b"\x26" + encode_str(k) + encode_str(v)
                body += encode_varint(len(props)) + props
            body += payload.encode("utf-8")
            self.send(packet(first, body))


class Server:
    def __init__(self, opts):
        self.opts = opts
        comments = list(opts.comment or [])
        self.recorder = Recorder(opts.out, comments)
        self.closed = 0
        self.done = None
        self.tasks = set()

    async def on_client(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await Session(self, reader, writer).run()
        finally:
            self.tasks.discard(task)
            self.closed += 1
            if (self.opts.max_connections and
                    self.closed >= self.opts.max_connections and
                    not self.opts.command):
                self.done.set()

    async def main(self):
        self.done = asyncio.Event()
        server = await asyncio.start_server(self.on_client, "127.0.0.1",
                                            self.opts.port)
        rc = 0
        async with server:
            if self.opts.command:
                rc = await self.run_command()
                # let the connection handler drain what the client sent
                if self.tasks:
                    await asyncio.wait(list(self.tasks), timeout=2)
            else:
                try:
                    await asyncio.wait_for(self.done.wait(), self.opts.timeout)
                except asyncio.TimeoutError:
                    print("record_fixtures: timeout", file=sys.stderr)
            for t in list(self.tasks):
                t.cancel()
        missing = self.missing_expected()
        if missing:
            print("record_fixtures: flow incomplete, expected c2s sequence "
                  "not seen (first missing: %s)" % missing, file=sys.stderr)
            return 3
        if rc and rc not in self.opts.ok_rc:
            return rc
        self.recorder.write()
        return 0

    def missing_expected(self):
        """Check that the c2s packet types named by --expect occur in this
        order (as a subsequence).  Return the first missing name, or None."""
        wanted = [w.strip().upper() for w in (self.opts.expect or "").split(",")
                  if w.strip()]
        seen = [TYPE_NAMES[int(l.split()[1][0], 16)]
                for l in self.recorder.lines if l.startswith("c2s ")]
        i = 0
        for name in seen:
            if i < len(wanted) and name == wanted[i]:
                i += 1
        return wanted[i] if i < len(wanted) else None

    async def run_command(self):
        cmd = self.opts.command
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = await asyncio.wait_for(proc.wait(), self.opts.timeout)
        except asyncio.TimeoutError:
            print("record_fixtures: client timed out after %ss: %s"
                  % (self.opts.timeout, " ".join(cmd)), file=sys.stderr)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            rc = 124
        if rc:
            print("record_fixtures: client exited with %d" % rc,
                  file=sys.stderr)
        return rc


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(
        description="Fake MQTT server that records client packets as hex.")
    ap.add_argument("--check", nargs="+", metavar="PATH",
                    help="validate fixture files / directories and exit")
    ap.add_argument("--port", type=int, help="TCP port on 127.0.0.1")
    ap.add_argument("--out", default="-", help="fixture file to write "
                    "(default: stdout)")
    ap.add_argument("--comment", action="append",
                    help="comment line for the top of the file (repeatable)")
    ap.add_argument("--publish", nargs=3, action="append",
                    metavar=("QOS", "TOPIC", "PAYLOAD"),
                    help="PUBLISH to send after the first SUBACK (repeatable)")
    ap.add_argument("--publish-retain", action="store_true",
                    help="set RETAIN on scripted publishes")
    ap.add_argument("--publish-user-prop", nargs=2, action="append",
                    metavar=("KEY", "VALUE"),
                    help="v5 user property on scripted publishes")
    ap.add_argument("--topic-alias-max", type=int, default=0,
                    help="v5: advertise Topic Alias Maximum in CONNACK")
    ap.add_argument("--max-connections", type=int, default=1,
                    help="without a command: stop after N connections closed")
    ap.add_argument("--expect", metavar="TYPE,TYPE,...",
                    help="c2s packet types that must occur in this order "
                    "(e.g. CONNECT,PUBLISH,PUBREL,DISCONNECT); otherwise "
                    "nothing is written and the exit status is 3")
    ap.add_argument("--ok-rc", type=int, action="append", default=[],
                    help="client exit status to accept besides 0 "
                    "(repeatable)")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds before giving up (client is killed)")
    opts = ap.parse_args(argv)
    opts.command = command
    if opts.check:
        return run_check(opts.check)
    if opts.port is None:
        ap.error("--port is required")
    return asyncio.run(Server(opts).main())


if __name__ == "__main__":
    sys.exit(main())
