#!/usr/bin/env python3
# Test tool: sends one UDP datagram in a hand-built IPv6 frame out of an interface (AF_PACKET), so a test can give it a
# source no socket would use (an IPv4-mapped ::ffff:a.b.c.d). Run inside the sender's network namespace, as root.
# Usage: send-raw6.py IFACE DST_MAC SRC_IP6 DST_IP6 DST_PORT HEX_PAYLOAD
import ipaddress, socket, struct, sys

iface, dst_mac, src, dst, port, payload = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), bytes.fromhex(sys.argv[6])
s6 = ipaddress.IPv6Address(src).packed
d6 = ipaddress.IPv6Address(dst).packed
udp_len = 8 + len(payload)
pseudo = s6 + d6 + struct.pack('!I3xB', udp_len, 17)
def csum(data):
    if len(data) % 2: data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16: total = (total & 0xffff) + (total >> 16)
    return (~total & 0xffff) or 0xffff
udp = struct.pack('!HHHH', 40000, port, udp_len, 0) + payload
udp = udp[:6] + struct.pack('!H', csum(pseudo + udp)) + udp[8:]
ip6 = struct.pack('!IHBB', 6 << 28, udp_len, 17, 64) + s6 + d6
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((iface, 0))
src_mac = sock.getsockname()[4]
sock.send(bytes.fromhex(dst_mac.replace(':', '')) + src_mac + b'\x86\xdd' + ip6 + udp)
