#!/usr/bin/env python3
# Test tool: floods a UDP port with IPv4 datagrams whose source addresses are forged (raw socket, IP_HDRINCL), as fast
# as one process can, bounded by time and by count. Run inside the sender's network namespace, as root. Prints one JSON line.
# Usage: flood-raw4.py JSON with dst, port, seconds, maxPackets, sources (how many), sourceBase ("10.a": sources are
# 10.a.x.y), bytes (payload length), and optional tokenHex (4 bytes put at payload offset 4 after "ses" 02: an insider's
# valid token; without it the token is random), optional mac1KeyHex (then the last 16 bytes are a valid mac1, keyed
# BLAKE2b-128 over the rest: a holder of server.pub), and optional source (one address for every packet: forging one host).
import hashlib, json, os, random, socket, struct, sys, time

a = json.loads(sys.argv[1])
dst = socket.inet_aton(a['dst'])
base = [int(x) for x in a.get('sourceBase', '10.250').split('.')]
token = bytes.fromhex(a['tokenHex']) if a.get('tokenHex') else None
frames = []
for i in range(max(1, int(a['sources']))):
    src = socket.inet_aton(a['source']) if a.get('source') else bytes([base[0], base[1], 1 + (i >> 8) % 254, 1 + (i & 0xff) % 254])
    payload = b'ses\x02' + (token if token else os.urandom(4)) + os.urandom(int(a['bytes']) - 8)
    if a.get('mac1KeyHex'):
        payload = payload[:-16] + hashlib.blake2b(payload[:-16], digest_size=16, key=bytes.fromhex(a['mac1KeyHex'])).digest()
    udp = struct.pack('!HHHH', random.randint(1024, 65535), int(a['port']), 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    frames.append(ip + udp)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
target = (a['dst'], 0)
deadline = time.monotonic() + float(a['seconds'])
limit = int(a['maxPackets'])
sent = 0
errors = 0
n = len(frames)
started = time.monotonic()
while sent < limit:
    for f in frames[sent % n:] if sent % n else frames:
        try:
            s.sendto(f, target)
            sent += 1
        except OSError:
            errors += 1
        if sent >= limit:
            break
    if time.monotonic() >= deadline:
        break
print(json.dumps({'sent': sent, 'errors': errors, 'seconds': round(time.monotonic() - started, 3), 'sources': n}))
