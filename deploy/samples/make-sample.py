#!/usr/bin/env python3
"""Builds deploy/samples/mx-sample.pcap with scapy, independently of the project's Rust code:
the MX trailer and control PDUs are laid out here by hand from WIRE.md (draft-04 §4.2.1, §5).

Usage: make-sample.py OUT.pcap   (prints what it wrote, one line per packet, as JSON lines on
stderr so that tests can compare the decoder's view with the generator's intent)."""
import json
import struct
import sys

from scapy.all import GRE, IP, TCP, UDP, Ether, Raw, wrpcap

N_MADP, CLIENT_WIFI, CLIENT_LTE = "192.0.2.1", "198.51.100.7", "203.0.113.9"
ANCHOR_SERVER, ANCHOR_CLIENT = "10.0.0.1", "10.0.0.2"
WIFI_PORT, LTE_PORT, CTRL_PORT = 10021, 10020, 8888
NH, CID, TC, SN, FSL, FC = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04


def trailer(nh=None, cid=None, tc=None, sn=None, fsl=None, fc=None):
    """WIRE.md: | FC | FSL | SN | TC | CID | NH | flags |, each field present when flagged."""
    flags, body = 0, b""
    # Built from the flags octet backwards: NH sits next to it, FC furthest away.
    for flag, value, fmt in ((NH, nh, "B"), (CID, cid, "B"), (TC, tc, "B"),
                             (SN, sn, "H"), (FSL, fsl, "H"), (FC, fc, "B")):
        if value is not None:
            flags |= flag
            body = struct.pack("!" + fmt, value) + body
    return body + bytes([flags])


def mx_pdu(sdus, **fields):
    """Default layout (draft-04 §4.2.1): first SDU's header gets protocol 114 and the whole
    length; Next Header carries its original protocol."""
    first = IP(bytes(sdus[0]))
    fields.setdefault("nh", first.proto)
    t = trailer(**fields)
    rest = b"".join(bytes(s) for s in sdus[1:])
    payload = bytes(first.payload)
    first.proto = 114
    first.len = None
    first.chksum = None
    pkt = IP(bytes(first.__class__(src=first.src, dst=first.dst, proto=114, id=first.id,
                                   ttl=first.ttl) / Raw(payload + rest + t)))
    return pkt


def fragments(sdu, sn, pieces):
    """draft-04 §4.2.2: copies of the SDU's IP header, one piece of its payload each, the
    same SN, FC = MF | offset."""
    ip = IP(bytes(sdu))
    payload = bytes(ip.payload)
    size = -(-len(payload) // pieces)
    out = []
    for i in range(pieces):
        piece = payload[i * size:(i + 1) * size]
        more = 0x80 if i < pieces - 1 else 0
        t = trailer(nh=ip.proto, sn=sn, fc=more | i)
        out.append(IP(src=ip.src, dst=ip.dst, proto=114, id=ip.id, ttl=ip.ttl) / Raw(piece + t))
    return out


def tunnel(pdu, src, dst, sport, dport):
    return Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(bytes(pdu))


def main(out):
    pkts, intent = [], []

    def add(pkt, what):
        pkts.append(pkt)
        intent.append(dict(packet=len(pkts), **what))

    sdu = lambda n, sport=4000, proto="udp": IP(src=ANCHOR_SERVER, dst=ANCHOR_CLIENT, id=n) / (
        UDP(sport=sport, dport=5201) if proto == "udp" else TCP(sport=sport, dport=5201)) / Raw(bytes(range(n % 200, n % 200 + 40)) * (n // 40 + 1))
    # Downlink data on Wi-Fi and LTE, numbered per (connection, class): SN 1, 2, 3.
    add(tunnel(mx_pdu([sdu(100)], cid=1, tc=0, sn=1), N_MADP, CLIENT_WIFI, WIFI_PORT, 40000),
        {"kind": "data", "direction": "downlink", "sns": [1]})
    add(tunnel(mx_pdu([sdu(300, proto="tcp")], cid=1, tc=0, sn=2), N_MADP, CLIENT_LTE, LTE_PORT, 40001),
        {"kind": "data", "direction": "downlink", "sns": [2]})
    # Concatenation (§4.2.3): three small SDUs, FSL, SN of the last.
    add(tunnel(mx_pdu([sdu(20, 4001), sdu(30, 4002), sdu(40, 4003)], cid=1, tc=0, sn=5, fsl=len(sdu(20, 4001))),
               N_MADP, CLIENT_WIFI, WIFI_PORT, 40000),
        {"kind": "data", "direction": "downlink", "sns": [3, 4, 5]})
    # Fragmentation (§4.2.2): one 1800-byte SDU in three fragments, SN 6.
    for f in fragments(sdu(1750), 6, 3):
        add(tunnel(f, N_MADP, CLIENT_LTE, LTE_PORT, 40001), {"kind": "fragment", "direction": "downlink", "sns": []})
    # Uplink data from the client.
    up = IP(src=ANCHOR_CLIENT, dst=ANCHOR_SERVER, id=7) / UDP(sport=5201, dport=4000) / Raw(b"u" * 64)
    add(tunnel(mx_pdu([up], cid=1, sn=65535), CLIENT_WIFI, N_MADP, 40000, WIFI_PORT),
        {"kind": "data", "direction": "uplink", "sns": [65535]})
    # Control (§5): probe REQ with R-CID and padding, its ACK, a keep-alive.
    req = bytes([1, 0]) + struct.pack("!HBB", 17, 0x80 | 0x40 | 0x20, 1) + bytes(10)
    add(tunnel(req, N_MADP, CLIENT_WIFI, CTRL_PORT, 40002), {"kind": "control", "direction": "downlink", "type": "probe-req"})
    add(tunnel(bytes([1, 1]) + struct.pack("!HB", 17, 0), CLIENT_LTE, N_MADP, 40003, CTRL_PORT),
        {"kind": "control", "direction": "uplink", "type": "probe-ack"})
    add(tunnel(bytes([0, 1]) + struct.pack("!H", 300), CLIENT_LTE, N_MADP, 40003, CTRL_PORT),
        {"kind": "control", "direction": "uplink", "type": "keep-alive"})
    # GRE convergence (§4.4): key low 16 bits = anchor connection 1, sequence number 42.
    add(Ether() / IP(src=CLIENT_WIFI, dst=N_MADP) / GRE(key_present=1, seqnum_present=1, key=1, seqence_number=42, proto=0x0800) / up,
        {"kind": "gre"})
    # Something else on the wire.
    add(Ether() / IP(src=CLIENT_WIFI, dst="192.0.2.53") / UDP(sport=5353, dport=53) / Raw(b"\x12\x34" + bytes(10)),
        {"kind": "other"})
    for i, p in enumerate(pkts):
        p.time = 1767225600 + i / 1000  # fixed timestamps: the committed capture is reproducible
        if p.haslayer(Ether):
            p[Ether].src, p[Ether].dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
    wrpcap(out, pkts)
    for i in intent:
        print(json.dumps(i), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mx-sample.pcap")
