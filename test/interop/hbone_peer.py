#!/usr/bin/python3
"""An independent HBONE peer that plays an Istio ambient ztunnel (client: its outbound; server: its in-pod inbound).

It shares no code with smesh: TLS is Python's ssl module (OpenSSL), HTTP/2 framing, HPACK and flow control are the
python3-h2 state machine (Debian package; run this file with Debian's interpreter, /usr/bin/python3). The wire
contract is ztunnel's HBONE:

  * TCP to <pod ip>:15008, TLS 1.3 only, ALPN h2, no SNI; both sides present mesh-issued workload certificates
    whose single URI SAN is the SPIFFE id; the client checks that the server is the workload it dialled.
  * One HTTP/2 CONNECT stream per proxied connection, :authority = <ip>:<port>, no :scheme/:path; the server
    answers 200 once the destination is connected (400 malformed, 401 denied, 503 unreachable), then DATA both
    ways; END_STREAM <-> TCP half-close, RST_STREAM <-> TCP reset.

Results are JSON objects, one per line on stdout.

  client  --host IP [--port 15008] --cert F --key F --ca F --expect-id SPIFFE --authority IP:PORT
          [--send STR | --send-bytes N | --http-get PATH [--http-host H]] [--streams N] [--method M]
          [--forwarded V] [--baggage V] [--timeout S]
          One line: TLS facts, the server's SPIFFE id, and per stream the status, bytes and how it ended.
  server  [--listen 0.0.0.0:15008] --cert F --key F --ca F [--trust-domain TD] [--allow SPIFFE ...]
          {"listening":…} once bound, then a line per connection, per stream's first DATA (client id, authority,
          first bytes) and per finished stream (status, byte counts, how each side ended).
"""
import argparse
import hashlib
import ipaddress
import json
import selectors
import signal
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

# ztunnel's HTTP/2 windows (4 MiB per stream, 16 MiB per connection) and stream limit.
STREAM_WINDOW = 4 * 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
MAX_STREAMS = 100
# Backpressure: stop taking app bytes into HTTP/2 while this much waits for the TLS socket, or per stream for credit.
MAX_WIRE_BACKLOG = 1024 * 1024
MAX_PENDING = 1024 * 1024
READ_SIZE = 65536
HEAD_BYTES = 120
# Received bytes shown as text in a result line (all are counted and hashed).
MAX_TEXT = 4096
IDLE_CONNECTION_S = 300

_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def tls_context(server_side, cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    # Identity is the URI SAN, never a DNS name: OpenSSL verifies the chain, spiffe_ids() reads the name.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def spiffe_ids(peer_cert):
    if not peer_cert:
        return []
    return [v for (k, v) in peer_cert.get("subjectAltName", ()) if k == "URI" and v.startswith("spiffe://")]


def own_spiffe_id(cert_file):
    """For the listening line only (CPython's PEM decoder, the one behind getpeercert(); None if it is absent)."""
    try:
        ids = spiffe_ids(ssl._ssl._test_decode_cert(cert_file))  # pylint: disable=protected-access
    except (AttributeError, ssl.SSLError, OSError):
        return None
    return ids[0] if len(ids) == 1 else None


def new_h2(client_side):
    # python3-h2 4.1's header validator predates RFC 7540 §8.3 CONNECT (it demands :scheme and :path), so validation
    # of the request side is off: the client builds CONNECT requests itself, the server checks them itself.
    if client_side:
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False)
    else:
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8", validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    conn.local_settings = h2.settings.Settings(client=client_side, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
        h2.settings.SettingCodes.ENABLE_PUSH: 0,
    })
    conn.initiate_connection()
    conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
    return conn


def addr_str(addr):
    return "%s:%d" % (addr[0], addr[1])


def local_of(sock):
    try:
        return addr_str(sock.getsockname())
    except OSError:
        return None


def parse_authority(value):
    """'ip:port' -> (ip, port), or None when it is not an IP address and a port (ztunnel dials addresses only)."""
    if not value or ":" not in value:
        return None
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(host)
        p = int(port, 10)
    except ValueError:
        return None
    if not 0 < p < 65536:
        return None
    return (str(ip), p)


class TlsWire:
    """A non-blocking TLS socket under one H2Connection: a write backlog and reads of all OpenSSL has decrypted."""

    def __init__(self, sock, conn):
        self.sock = sock
        self.conn = conn
        self.backlog = bytearray()
        sock.setblocking(False)

    def flush(self):
        self.backlog += self.conn.data_to_send()
        while self.backlog:
            try:
                n = self.sock.send(self.backlog)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            del self.backlog[:n]

    def read(self):
        """h2 events for what arrived ([] if nothing complete yet), or None at EOF."""
        chunks = []
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not data:
                if not chunks:
                    return None
                break
            chunks.append(data)
            if self.sock.pending() == 0 and len(data) < READ_SIZE:
                break
        return self.conn.receive_data(b"".join(chunks)) if chunks else []

    def room(self):
        return len(self.backlog) < MAX_WIRE_BACKLOG


def send_credit(conn, sid, pending, wire):
    """Moves bytes from `pending` into DATA frames as flow-control credit and the TLS backlog allow."""
    while pending and wire.room():
        try:
            window = conn.local_flow_control_window(sid)
        except h2.exceptions.StreamClosedError:
            return
        n = min(len(pending), window, conn.max_outbound_frame_size)
        if n <= 0:
            return
        conn.send_data(sid, bytes(pending[:n]))
        del pending[:n]


# ---------------------------------------------------------------------------------------------------------------
# client: a ztunnel's outbound


def pattern_bytes(n):
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


def parse_http_response(raw):
    """A complete HTTP/1.1 response with Content-Length -> {status, headers, body}, else None."""
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = raw[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return {"status": 0, "error": "not an HTTP response", "head": lines[0][:80]}
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = raw[head_end + 4:]
    length = headers.get("content-length")
    if length is None or len(body) < int(length):
        return None
    body = body[: int(length)].decode("utf-8", "replace")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body
    return {"status": int(parts[1]), "headers": headers, "body": parsed}


class ClientStream:
    def __init__(self, sid, payload, http):
        self.sid = sid
        self.status = None
        self.received = bytearray()
        self.pending = bytearray()
        self.payload = payload
        self.http = http
        self.local_ended = False
        self.remote_ended = False
        self.reset_code = None
        self.http_response = None

    def done(self):
        if self.reset_code is not None:
            return True
        if self.status is not None and self.status != 200:
            return self.remote_ended
        # HTTP: the app answers `Connection: close`, so its close (END_STREAM) follows the complete response.
        return self.remote_ended and self.local_ended

    def result(self):
        r = {
            "status": self.status,
            "receivedBytes": len(self.received),
            "receivedSha256": hashlib.sha256(self.received).hexdigest(),
            "received": bytes(self.received[:MAX_TEXT]).decode("utf-8", "replace"),
            "end": "reset" if self.reset_code is not None else ("fin" if self.remote_ended else "open"),
            "resetCode": self.reset_code,
        }
        if self.http:
            r["http"] = self.http_response
        return r


def run_client(a):
    out = {"mode": "client", "ok": False, "error": None, "serverId": None, "serverIds": [], "tls": None, "alpn": None}
    deadline = time.monotonic() + a.timeout
    try:
        raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        out["error"] = "connect: %s" % e
        return out
    out["local"] = local_of(raw)
    ctx = tls_context(False, a.cert, a.key, a.ca)
    try:
        # server_hostname=None: no SNI, as ztunnel (the server picks its certificate by the dialled address).
        sock = ctx.wrap_socket(raw, server_hostname=None)
    except (ssl.SSLError, OSError) as e:
        raw.close()
        out["error"] = "tls: %s" % e
        return out
    try:
        out["tls"] = sock.version()
        out["alpn"] = sock.selected_alpn_protocol()
        out["serverIds"] = spiffe_ids(sock.getpeercert())
        out["serverId"] = out["serverIds"][0] if len(out["serverIds"]) == 1 else None
        if out["alpn"] != "h2":
            out["error"] = "server did not select ALPN h2"
        elif out["serverId"] is None:
            out["error"] = "server certificate has no single spiffe:// URI SAN"
        elif a.expect_id and out["serverId"] != a.expect_id:
            out["error"] = "wrong server identity: %s, expected %s" % (out["serverId"], a.expect_id)
        else:
            client_streams(a, sock, out, deadline)
        return out
    finally:
        try:
            sock.close()
        except OSError:
            pass


def client_streams(a, sock, out, deadline):
    conn = new_h2(True)
    wire = TlsWire(sock, conn)
    http = a.http_get is not None
    if http:
        host = a.http_host or a.authority
        payload = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hbone-peer\r\nConnection: close\r\n\r\n" % (a.http_get, host)).encode()
    elif a.send_bytes is not None:
        payload = pattern_bytes(a.send_bytes)
        out["sentBytes"] = len(payload)
        out["sentSha256"] = hashlib.sha256(payload).hexdigest()
    else:
        payload = (a.send or "").encode()
    streams = {}
    for _ in range(a.streams):
        sid = conn.get_next_available_stream_id()
        headers = [(":method", a.method), (":authority", a.authority)]
        if a.forwarded:
            # ztunnel names the original client: `for="ip:port"` (RFC 7239 quoting); `auto` = this socket's address.
            headers.append(("forwarded", 'for="%s"' % out["local"] if a.forwarded == "auto" else a.forwarded))
        if a.baggage:
            headers.append(("baggage", a.baggage))
        conn.send_headers(sid, headers)
        streams[sid] = ClientStream(sid, payload, http)

    def pump(s):
        if s.status != 200 or s.local_ended or s.reset_code is not None:
            return
        send_credit(conn, s.sid, s.pending, wire)
        # TCP: write, then half-close (END_STREAM), then read to the server's END_STREAM. HTTP: half-close once the
        # response is complete (an app may take a half-close before the response as the end of the exchange).
        if not s.pending and (not s.http or s.remote_ended or s.http_response):
            conn.end_stream(s.sid)
            s.local_ended = True

    goaway = None
    eof = False
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        while not all(s.done() for s in streams.values()) and not eof:
            wire.flush()
            sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if wire.backlog else 0))
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not sel.select(timeout=left):
                continue
            try:
                events = wire.read()
            except (ssl.SSLError, OSError) as e:
                out["error"] = "read: %s" % e
                break
            except h2.exceptions.ProtocolError as e:
                out["error"] = "protocol: %s" % e
                break
            if events is None:
                eof = True
                events = []
            for ev in events:
                s = streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived) and s:
                    s.status = int(dict(ev.headers).get(":status", "0"))
                    if s.status == 200:
                        s.pending += s.payload
                elif isinstance(ev, h2.events.DataReceived) and s:
                    s.received += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if s.http and s.http_response is None:
                        s.http_response = parse_http_response(bytes(s.received))
                elif isinstance(ev, h2.events.StreamEnded) and s:
                    s.remote_ended = True
                    if s.http and s.http_response is None:
                        s.http_response = parse_http_response(bytes(s.received))
                elif isinstance(ev, h2.events.StreamReset) and s:
                    s.reset_code = int(ev.error_code)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = int(ev.error_code)
            for s in streams.values():
                pump(s)
        # Say goodbye properly (GOAWAY) unless the server already went away; best effort within a short bound.
        if goaway is None and not eof:
            conn.close_connection()
            wire.flush()
        end = time.monotonic() + 1
        while wire.backlog and time.monotonic() < end:
            sel.modify(sock, selectors.EVENT_WRITE)
            sel.select(timeout=0.1)
            wire.flush()
    except (OSError, h2.exceptions.ProtocolError) as e:
        out["error"] = out["error"] or "write: %s" % e
    finally:
        sel.close()
    results = [streams[sid].result() for sid in sorted(streams)]
    first = results[0]
    out.update({k: first[k] for k in ("status", "received", "receivedBytes", "receivedSha256", "end", "resetCode")})
    if http:
        out["http"] = first["http"]
    if len(results) > 1:
        out["streams"] = results
    if goaway is not None:
        out["goaway"] = goaway
    if out["error"] is None and not all(streams[sid].done() for sid in streams):
        out["error"] = "connection closed by server" if eof else "timeout"
    out["ok"] = out["error"] is None and all(r["status"] == 200 and r["end"] == "fin" for r in results)


# ---------------------------------------------------------------------------------------------------------------
# server: a ztunnel's in-pod inbound listener


class ServerStream:
    def __init__(self, sid, authority, headers):
        self.sid = sid
        self.authority = authority
        self.headers = headers
        self.upstream = None
        self.status = None
        self.pending = bytearray()  # app -> client, waiting for credit
        self.to_app = bytearray()  # client -> app, waiting for the app's socket
        self.head = bytearray()
        self.from_client = 0
        self.to_client = 0
        self.client_end = None  # "fin" | "reset"
        self.app_shut = False
        self.upstream_eof = False
        self.local_ended = False
        self.reported = False


class InboundConnection:
    def __init__(self, server, sock, peer, client_id):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.local = local_of(sock)
        self.client_id = client_id
        self.conn = new_h2(False)
        self.wire = TlsWire(sock, self.conn)
        self.sel = selectors.DefaultSelector()
        self.interest = {}
        self.streams = {}

    def watch(self, fileobj, mask, data):
        old = self.interest.get(fileobj)
        if old == mask or (old is None and not mask):
            return
        if not mask:
            self.sel.unregister(fileobj)
            del self.interest[fileobj]
        elif old is None:
            self.sel.register(fileobj, mask, data)
            self.interest[fileobj] = mask
        else:
            self.sel.modify(fileobj, mask, data)
            self.interest[fileobj] = mask

    def report(self, s, note=None):
        if s.reported:
            return
        s.reported = True
        emit({
            "event": "stream",
            "clientId": self.client_id,
            "peer": self.peer,
            "local": self.local,
            "streamId": s.sid,
            "method": s.headers.get(":method"),
            "authority": s.authority,
            "status": s.status,
            "forwarded": s.headers.get("forwarded"),
            "baggage": s.headers.get("baggage"),
            "bytesFromClient": s.from_client,
            "bytesToClient": s.to_client,
            "clientEnd": s.client_end,
            "upstreamEnd": "fin" if s.upstream_eof else None,
            "head": bytes(s.head).decode("latin-1"),
            "note": note,
        })

    def forget(self, s, reset_app, note=None):
        if s.upstream is not None:
            self.watch(s.upstream, 0, None)
            if reset_app:
                # SO_LINGER 0: close() sends the app a TCP RST, as RST_STREAM asks.
                s.upstream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.upstream.close()
            s.upstream = None
        self.report(s, note)
        self.streams.pop(s.sid, None)

    def respond_error(self, s, status, note):
        s.status = status
        self.conn.send_headers(s.sid, [(":status", str(status))], end_stream=True)
        self.forget(s, False, note)

    def on_request(self, ev):
        headers = dict(ev.headers)
        s = ServerStream(ev.stream_id, headers.get(":authority"), headers)
        self.streams[s.sid] = s
        if headers.get(":method") != "CONNECT":
            return self.respond_error(s, 400, "not CONNECT")
        if ":scheme" in headers or ":path" in headers or ":protocol" in headers:
            return self.respond_error(s, 400, "CONNECT with :scheme/:path/:protocol")
        target = parse_authority(s.authority)
        if target is None:
            return self.respond_error(s, 400, "authority is not ip:port")
        if self.server.allow and self.client_id not in self.server.allow:
            return self.respond_error(s, 401, "client identity not allowed")
        try:
            up = socket.create_connection(target, timeout=5)
        except OSError as e:
            return self.respond_error(s, 503, "connect %s: %s" % (s.authority, e))
        up.setblocking(False)
        s.upstream = up
        s.status = 200
        self.conn.send_headers(s.sid, [(":status", "200")])
        if ev.stream_ended:
            s.client_end = "fin"
        return None

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.on_request(ev)
            return
        sid = getattr(ev, "stream_id", None)
        s = self.streams.get(sid)
        if isinstance(ev, h2.events.DataReceived):
            if s is None or s.upstream is None:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                return
            if not s.from_client and ev.data:
                # A stream can stay open long after its request (a client's keep-alive pool): say at once who sent what.
                emit({"event": "stream_data", "clientId": self.client_id, "peer": self.peer, "local": self.local, "streamId": s.sid,
                      "authority": s.authority, "head": bytes(ev.data[:HEAD_BYTES]).decode("latin-1")})
            if len(s.head) < HEAD_BYTES:
                s.head += ev.data[: HEAD_BYTES - len(s.head)]
            s.from_client += len(ev.data)
            s.to_app += ev.data
            # Padding is credited now, data once it reached the app: the app's pace is the client's pace.
            if ev.flow_controlled_length > len(ev.data):
                self.conn.acknowledge_received_data(ev.flow_controlled_length - len(ev.data), sid)
        elif isinstance(ev, h2.events.StreamEnded) and s is not None:
            s.client_end = "fin"
        elif isinstance(ev, h2.events.StreamReset) and s is not None:
            s.client_end = "reset"
            self.forget(s, True, "reset by client (code %d)" % int(ev.error_code))
        elif isinstance(ev, h2.events.ConnectionTerminated):
            emit({"event": "goaway", "peer": self.peer, "errorCode": int(ev.error_code)})

    def app_readable(self, s):
        try:
            data = s.upstream.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # The app reset its connection: RST_STREAM (CONNECT_ERROR, RFC 7540 §8.3).
            self.conn.reset_stream(s.sid, h2.errors.ErrorCodes.CONNECT_ERROR)
            self.forget(s, False, "app reset")
            return
        if data:
            s.pending += data
            s.to_client += len(data)
        else:
            s.upstream_eof = True

    def app_writable(self, s):
        try:
            n = s.upstream.send(s.to_app)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.conn.reset_stream(s.sid, h2.errors.ErrorCodes.CONNECT_ERROR)
            self.forget(s, False, "app reset")
            return
        del s.to_app[:n]
        self.conn.acknowledge_received_data(n, s.sid)

    def progress(self, s):
        """Moves what can move for one stream, closes it when both directions are done, updates what to wait for."""
        if s.upstream is None:
            return
        if s.client_end == "fin" and not s.to_app and not s.app_shut:
            try:
                s.upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            s.app_shut = True
        send_credit(self.conn, s.sid, s.pending, self.wire)
        if s.upstream_eof and not s.pending and not s.local_ended:
            self.conn.end_stream(s.sid)
            s.local_ended = True
        if s.local_ended and s.app_shut:
            self.forget(s, False)
            return
        want_read = not s.upstream_eof and len(s.pending) < MAX_PENDING and self.wire.room()
        mask = (selectors.EVENT_READ if want_read else 0) | (selectors.EVENT_WRITE if s.to_app else 0)
        self.watch(s.upstream, mask, s)

    def handle(self):
        self.wire.flush()
        idle_since = time.monotonic()
        while True:
            self.watch(self.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if self.wire.backlog else 0), None)
            ready = self.sel.select(timeout=30)
            if not ready:
                if not self.streams and time.monotonic() - idle_since > IDLE_CONNECTION_S:
                    return
                continue
            idle_since = time.monotonic()
            for key, mask in ready:
                if key.data is None:
                    if mask & selectors.EVENT_READ:
                        try:
                            events = self.wire.read()
                        except (ssl.SSLError, OSError, h2.exceptions.ProtocolError) as e:
                            emit({"event": "connection_error", "peer": self.peer, "error": "%s: %s" % (type(e).__name__, e)})
                            events = None
                        if events is None:
                            return
                        for ev in events:
                            self.on_event(ev)
                    continue
                s = key.data
                if s.upstream is not None and mask & selectors.EVENT_WRITE:
                    self.app_writable(s)
                if s.upstream is not None and mask & selectors.EVENT_READ:
                    self.app_readable(s)
            for s in list(self.streams.values()):
                self.progress(s)
            self.wire.flush()

    def close(self):
        for s in list(self.streams.values()):
            self.forget(s, True, "connection closed")
        try:
            self.sock.close()
        except OSError:
            pass
        self.sel.close()


class HboneServer:
    def __init__(self, a):
        self.a = a
        self.allow = set(a.allow or [])
        self.td_prefix = "spiffe://%s/" % a.trust_domain
        self.ctx = tls_context(True, a.cert, a.key, a.ca)
        self._sni = {}
        self._sni_lock = threading.Lock()
        self.ctx.sni_callback = self._on_sni
        self.own_id = own_spiffe_id(a.cert)

    def _on_sni(self, sslsock, server_name, _ctx):
        with self._sni_lock:
            self._sni[id(sslsock)] = server_name

    def serve(self):
        host, _, port = self.a.listen.rpartition(":")
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, int(port)))
        lsock.listen(128)
        emit({"listening": lsock.getsockname()[1], "address": addr_str(lsock.getsockname()), "id": self.own_id})
        while True:
            raw, addr = lsock.accept()
            threading.Thread(target=self.connection, args=(raw, addr), daemon=True).start()

    def connection(self, raw, addr):
        peer = addr_str(addr)
        local = local_of(raw)
        raw.settimeout(10)
        try:
            sock = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            emit({"event": "handshake_failed", "peer": peer, "local": local, "error": str(e)})
            raw.close()
            return
        with self._sni_lock:
            sni = self._sni.pop(id(sock), None)
        ids = spiffe_ids(sock.getpeercert())
        info = {"event": "connection", "peer": peer, "local": local, "tls": sock.version(), "alpn": sock.selected_alpn_protocol(),
                "sni": sni, "clientIds": ids, "clientId": ids[0] if len(ids) == 1 else None}
        refuse = None
        if info["alpn"] != "h2":
            refuse = "client did not offer ALPN h2"
        elif len(ids) != 1:
            refuse = "client certificate has no single spiffe:// URI SAN"
        elif not ids[0].startswith(self.td_prefix):
            refuse = "client identity outside trust domain %s" % self.a.trust_domain
        info["refused"] = refuse
        emit(info)
        if refuse:
            sock.close()
            return
        c = InboundConnection(self, sock, peer, ids[0])
        try:
            c.handle()
        except Exception as e:  # pylint: disable=broad-except  # one broken connection must not stop the listener
            emit({"event": "connection_error", "peer": peer, "error": "%s: %s" % (type(e).__name__, e)})
        finally:
            c.close()


def main(argv):
    p = argparse.ArgumentParser(description="independent HBONE peer (ztunnel's wire) for interop tests")
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("client", "server"):
        sp = sub.add_parser(name)
        sp.add_argument("--cert", required=True)
        sp.add_argument("--key", required=True)
        sp.add_argument("--ca", required=True)
        if name == "client":
            sp.add_argument("--host", required=True)
            sp.add_argument("--port", type=int, default=15008)
            sp.add_argument("--expect-id", required=True, help="the destination workload's SPIFFE id; '' accepts any")
            sp.add_argument("--authority", required=True)
            sp.add_argument("--send")
            sp.add_argument("--send-bytes", type=int, metavar="N", help="N bytes of a fixed pattern (results carry sha256)")
            sp.add_argument("--http-get", metavar="PATH")
            sp.add_argument("--http-host")
            sp.add_argument("--streams", type=int, default=1)
            sp.add_argument("--method", default="CONNECT")
            sp.add_argument("--forwarded", help="forwarded header value, or `auto` for for=\"<local ip:port>\"")
            sp.add_argument("--baggage")
            sp.add_argument("--timeout", type=float, default=10.0)
        else:
            sp.add_argument("--listen", default="0.0.0.0:15008")
            sp.add_argument("--trust-domain", default="cluster.local")
            sp.add_argument("--allow", action="append", help="only these client SPIFFE ids (else 401); default: any")
    a = p.parse_args(argv)
    if a.mode == "client":
        if not 1 <= a.streams <= MAX_STREAMS:
            p.error("--streams between 1 and %d" % MAX_STREAMS)
        emit(run_client(a))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    HboneServer(a).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
