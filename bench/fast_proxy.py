"""A lean counting proxy for the S3 server: asyncio, one event loop in one thread, one upstream
connection per client connection, a fixed delay per request, requests counted by S3 operation
and status code (the names copy_bench.py's threaded proxy uses).

copy_bench.py's proxy (http.server, a thread per connection) tops out at about 230 requests/s
on this 2-core machine with hundreds of connections: the thread switching under the GIL is the
limit, not the server. This one forwards bytes as they come (bodies are streamed, not parsed),
waits its delay with `asyncio.sleep` (no thread held), and so stays out of the way of the
server's own limit; restore_shards_bench.py measures that limit through it.

Listings (`root=`): `rclone serve s3` answers each ListObjectsV2 page by walking and sorting the
directories before its marker again, so a page of a 1M-object prefix costs it 0.2-1.3 s and the
1,000 pages of one listing take minutes, where S3 answers every page in tens of milliseconds
whatever the prefix holds. With `root` (the directory the server serves), the proxy answers a
ListObjectsV2 without a delimiter itself: the first page (no continuation token) takes a
snapshot of the prefix from that directory (key, size, modification time, and the MD5 that
rclone gives as the ETag, cached by path, size and mtime), and the continuation pages are
slices of it. Each page still pays the delay and is counted as `LIST`. Everything else,
listings with a delimiter included, goes to the server.

Usage from a benchmark:
    proxy = FastProxy(("127.0.0.1", server_port), delay=0.020, root=served_directory)
    port = proxy.start()              # serves in a daemon thread
    ... proxy.ops (a Counter), proxy.reset() ...
    proxy.stop()
"""

import asyncio
import bisect
import hashlib
import itertools
import os
import socket
import threading
from collections import Counter, OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

CHUNK = 1 << 20


def operation(method, target, copy):
    """The S3 operation of a request, as copy_bench.Proxy names it."""
    url = urlsplit(target)
    query = parse_qs(url.query, keep_blank_values=True)
    if method == "PUT" and copy:
        return "UploadPartCopy" if "partNumber" in query else "CopyObject"
    if method == "PUT":
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "GET" and ("list-type" in query or len([p for p in url.path.split("/") if p]) <= 1):
        return "LIST"
    return {"GET": "GetObject", "HEAD": "HeadObject"}.get(method, method)


def parse_head(head):
    """(first line, {lower-case name: value}) of an HTTP message head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def relay_body(reader, writer, headers, has_body):
    """Copies one message body from reader to writer, as framed by its headers."""
    if not has_body:
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:  # trailers, then an empty line
                while True:
                    line = await reader.readuntil(b"\r\n")
                    writer.write(line)
                    if line == b"\r\n":
                        return
            left = size + 2  # the chunk and its CRLF
            while left:
                data = await reader.readexactly(min(left, CHUNK))
                writer.write(data)
                left -= len(data)
                await writer.drain()
    left = int(headers.get("content-length") or 0)
    while left:
        data = await reader.readexactly(min(left, CHUNK))
        writer.write(data)
        left -= len(data)
        await writer.drain()


class Listings:
    """ListObjectsV2 pages answered from snapshots of the directory the server serves."""

    KEEP = 8  # snapshots kept for their continuation pages

    def __init__(self, root):
        self.root = Path(root)
        self.md5 = {}  # path -> (size, mtime_ns, hex digest)
        self.snapshots = OrderedDict()
        self.serial = itertools.count(1)
        self.lock = threading.Lock()

    def etag(self, path, st):
        cached = self.md5.get(path)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        with open(path, "rb") as f:
            digest = hashlib.md5(f.read()).hexdigest()
        self.md5[path] = (st.st_size, st.st_mtime_ns, digest)
        return digest

    def forget(self, folder):
        """Drops the cached digests of files under folder (deleted by the benchmark)."""
        folder = f"{folder}/"
        with self.lock:
            self.md5 = {p: v for p, v in self.md5.items() if not p.startswith(folder)}
            self.snapshots.clear()

    def snapshot(self, bucket, prefix):
        """Every object of bucket under prefix, sorted by key: (key, size, mtime, etag)."""
        base = self.root / bucket
        folder = base / prefix.rpartition("/")[0]
        entries = []
        for dirpath, dirnames, filenames in os.walk(folder):
            # rclone keeps in-progress multipart uploads in hidden .rclone-* entries.
            dirnames[:] = [d for d in dirnames if not d.startswith(".rclone")]
            rel = os.path.relpath(dirpath, base)
            for name in filenames:
                if name.startswith(".rclone"):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if not key.startswith(prefix):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                    etag = self.etag(path, st)
                except FileNotFoundError:  # deleted while listed
                    continue
                entries.append((key, st.st_size, st.st_mtime, etag))
        entries.sort()
        return entries

    def page(self, bucket, query):
        """The XML body of one ListObjectsV2 page."""
        arg = lambda name, default=None: query.get(name, [default])[0]
        prefix = arg("prefix", "")
        max_keys = min(int(arg("max-keys", "1000")), 1000)
        token, start_after = arg("continuation-token"), arg("start-after")
        url = arg("encoding-type") == "url"
        with self.lock:
            if token:
                sid, index = token.split(":")
                entries, index = self.snapshots[sid], int(index)
            else:
                entries = self.snapshot(bucket, prefix)
                sid = str(next(self.serial))
                self.snapshots[sid] = entries
                while len(self.snapshots) > self.KEEP:
                    self.snapshots.popitem(last=False)
                index = (bisect.bisect_right(entries, (start_after, float("inf")))
                         if start_after else 0)
        page = entries[index:index + max_keys]
        truncated = index + max_keys < len(entries)
        text = (lambda k: quote(k, safe="/")) if url else escape
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n'
               '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               f"<Name>{escape(bucket)}</Name><Prefix>{text(prefix)}</Prefix>",
               f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(page)}</KeyCount>",
               f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if url:
            out.append("<EncodingType>url</EncodingType>")
        if token:
            out.append(f"<ContinuationToken>{token}</ContinuationToken>")
        if start_after:
            out.append(f"<StartAfter>{text(start_after)}</StartAfter>")
        for key, size, mtime, etag in page:
            when = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
            out.append(f"<Contents><Key>{text(key)}</Key><LastModified>{when[:-3]}Z"
                       f"</LastModified><ETag>{etag}</ETag><Size>{size}</Size>"
                       "<StorageClass>STANDARD</StorageClass></Contents>")
        if truncated:
            out.append(f"<NextContinuationToken>{sid}:{index + max_keys}</NextContinuationToken>")
        out.append("</ListBucketResult>")
        return "".join(out).encode()


class FastProxy:
    def __init__(self, upstream, delay=0.0, root=None):
        self.upstream = upstream
        self.delay = delay
        self.listings = Listings(root) if root else None
        self.ops = Counter()
        self.loop = None
        self.server = None

    def reset(self):
        """Zeroes the counts (from the benchmark's thread; the loop only adds to a Counter)."""
        self.ops = Counter()

    def start(self):
        port_ready = threading.Event()
        holder = {}

        def serve():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self.handle, sock=sock, backlog=4096, limit=1 << 20))
            holder["port"] = sock.getsockname()[1]
            port_ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        port_ready.wait()
        return holder["port"]

    def stop(self):
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)

    async def handle(self, client_r, client_w):
        up_r = up_w = None
        try:
            while True:
                try:
                    head = await client_r.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, headers = parse_head(head)
                method, target, _ = line.split(" ", 2)
                op = operation(method, target, "x-amz-copy-source" in headers)
                if "expect" in headers:  # answer 100-continue here; upstream never sees it
                    client_w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = b"\r\n".join(l for l in head.split(b"\r\n")
                                        if not l.lower().startswith(b"expect:"))
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.listings and method == "GET" and op == "LIST":
                    url = urlsplit(target)
                    query = parse_qs(url.query, keep_blank_values=True)
                    bucket = url.path.strip("/")
                    if query.get("list-type") == ["2"] and "delimiter" not in query and \
                            "/" not in bucket:
                        body = await asyncio.get_running_loop().run_in_executor(
                            None, self.listings.page, bucket, query)
                        self.ops[op] += 1
                        client_w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                                       b"Content-Length: %d\r\n\r\n" % len(body) + body)
                        await client_w.drain()
                        continue
                if up_w is None:
                    up_r, up_w = await asyncio.open_connection(*self.upstream, limit=1 << 20)
                up_w.write(head)
                await relay_body(client_r, up_w, headers, True)
                await up_w.drain()
                while True:  # skip interim 1xx answers
                    rhead = await up_r.readuntil(b"\r\n\r\n")
                    rline, rheaders = parse_head(rhead)
                    status = int(rline.split(" ", 2)[1])
                    if status >= 200:
                        break
                self.ops[op] += 1
                if status >= 300:
                    self.ops[f"{op} {status}"] += 1
                client_w.write(rhead)
                has_body = method != "HEAD" and status not in (204, 304)
                if has_body and "content-length" not in rheaders and \
                        "chunked" not in rheaders.get("transfer-encoding", "").lower():
                    client_w.write(await up_r.read())  # delimited by the close
                    await client_w.drain()
                    return
                await relay_body(up_r, client_w, rheaders, has_body)
                await client_w.drain()
                if "close" in (headers.get("connection", "").lower(),
                               rheaders.get("connection", "").lower()):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            for w in (client_w, up_w):
                if w is not None:
                    w.close()
