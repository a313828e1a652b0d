"""An in-memory Google Cloud Storage for tests: `gs://` paths that never touch the local disk.

Two views of one object store (a dict in this process):
- an HTTP server speaking the subset of GCS's JSON API that TensorStore (orbax's array writer,
  `TENSORSTORE_GCS_HTTP_URL`) and google-cloud-storage (`STORAGE_EMULATOR_HOST`) use: object media
  read/write (media and multipart uploads, downloads) with generation preconditions, metadata, list
  with prefix/delimiter, delete, bucket get;
- an fsspec filesystem for the `gs` / `gcs` protocols, which etils `epath` uses when `EPATH_USE_TF=false`
  (in production epath reaches gs:// through `tf.io.gfile`, which cannot be pointed at a local server).

    with fake_gcs() as store:       # sets the environment, registers the filesystem
        ...                         # gs://bucket/... paths work everywhere
        store.names()               # every object written
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

_GENERATIONS = itertools.count(1)


class FakeGcsFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem under the gs:// protocol, with its own store (keys `/bucket/object`)."""

    protocol = ("gs", "gcs")
    store: dict = {}
    pseudo_dirs = [""]

    def __init__(self, *args, **kwargs):
        kwargs.pop("finalize_on_close", None)
        super().__init__(*args, **kwargs)

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        for prefix in ("gs://", "gcs://"):
            path = path.removeprefix(prefix)
        path = path.lstrip("/").rstrip("/")
        return "/" + path if path else ""


def generation(f: MemoryFile) -> int:
    """Objects are replaced, never edited, so a new MemoryFile is a new generation."""
    if not hasattr(f, "_fake_generation"):
        f._fake_generation = next(_GENERATIONS)
    return f._fake_generation


class _Store:
    def __init__(self):
        self.objects = FakeGcsFileSystem.store
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(k.lstrip("/") for k in self.objects)

    def meta(self, bucket: str, name: str, f: MemoryFile) -> dict:
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(f.size),
                "generation": str(generation(f)), "metageneration": "1",
                "id": f"{bucket}/{name}/{generation(f)}", "contentType": "application/octet-stream"}


class _Handler(BaseHTTPRequestHandler):
    store: _Store
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    # --- helpers ------------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict, headers: dict | None = None):
        self._reply(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str):
        self._json(status, {"error": {"code": status, "message": message}})

    def _parse(self) -> tuple[list[str], dict[str, str]]:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        return parts, query

    def _precondition(self, current: MemoryFile | None, query: dict) -> int | None:
        gen = generation(current) if current is not None else 0
        if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != gen:
            return 412
        if "ifGenerationNotMatch" in query and int(query["ifGenerationNotMatch"]) == gen:
            return 304
        return None

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # --- verbs --------------------------------------------------------------------------------------
    def do_GET(self):
        parts, query = self._parse()
        if parts[:1] == ["download"]:  # google-cloud-storage's media downloads
            parts, query = parts[1:], {**query, "alt": "media"}
        if parts[:3] != ["storage", "v1", "b"] or len(parts) < 4:
            return self._error(404, f"no route {self.path}")
        bucket = parts[3]
        if len(parts) == 4:
            return self._json(200, {"kind": "storage#bucket", "name": bucket, "id": bucket,
                                    "hierarchicalNamespace": {"enabled": False}})
        if len(parts) == 5 and parts[4] == "o":
            return self._list(bucket, query)
        name = "/".join(parts[5:])
        with self.store.lock:
            f = self.store.objects.get(f"/{bucket}/{name}")
        if f is None:
            return self._error(404, f"gs://{bucket}/{name} not found")
        status = self._precondition(f, query)
        if status:
            return self._reply(status)
        headers = {"x-goog-generation": str(generation(f)), "x-goog-metageneration": "1"}
        if query.get("alt") != "media":
            return self._json(200, self.store.meta(bucket, name, f), headers)
        data = f.getvalue()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start, _, end = rng[6:].partition("-")
            if start == "":  # suffix range
                lo, hi = max(0, len(data) - int(end)), len(data)
            else:
                lo, hi = int(start), (int(end) + 1 if end else len(data))
            headers["Content-Range"] = f"bytes {lo}-{hi - 1}/{len(data)}"
            return self._reply(206, data[lo:hi], headers, "application/octet-stream")
        return self._reply(200, data, headers, "application/octet-stream")

    def _list(self, bucket: str, query: dict):
        prefix, delim = query.get("prefix", ""), query.get("delimiter", "")
        lo, hi = query.get("startOffset", ""), query.get("endOffset", "")
        items, prefixes = [], set()
        with self.store.lock:
            objects = sorted(self.store.objects.items())
        for key, f in objects:
            b, _, name = key.lstrip("/").partition("/")
            if b != bucket or not name.startswith(prefix) or name < lo or (hi and name >= hi):
                continue
            rest = name[len(prefix):]
            if delim and delim in rest:
                prefixes.add(prefix + rest.split(delim)[0] + delim)
                continue
            items.append(self.store.meta(bucket, name, f))
        self._json(200, {"kind": "storage#objects", "items": items, "prefixes": sorted(prefixes)})

    def _multipart(self, body: bytes) -> tuple[str, bytes]:
        """(object name, data) of a multipart/related upload: a JSON metadata part, then the media."""
        boundary = self.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
        chunks = [c for c in body.split(b"--" + boundary) if c.strip() not in (b"", b"--")]
        parts = [c.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for c in chunks]
        return json.loads(parts[0])["name"], parts[1]

    def do_POST(self):
        parts, query = self._parse()
        kind = query.get("uploadType")
        if parts[:4] != ["upload", "storage", "v1", "b"] or kind not in ("media", "multipart"):
            return self._error(400, f"unsupported upload {self.path}")
        if kind == "multipart":  # google-cloud-storage's uploads (training/run_lock.py)
            bucket, (name, data) = parts[4], self._multipart(self._body())
        else:
            bucket, name, data = parts[4], query["name"], self._body()
        key = f"/{bucket}/{name}"
        with self.store.lock:
            status = self._precondition(self.store.objects.get(key), query)
            if status:
                return self._error(status, "precondition failed")
            f = MemoryFile(None, key, data)
            self.store.objects[key] = f
        self._json(200, self.store.meta(bucket, name, f))

    def do_DELETE(self):
        parts, query = self._parse()
        bucket, name = parts[3], "/".join(parts[5:])
        key = f"/{bucket}/{name}"
        with self.store.lock:
            f = self.store.objects.get(key)
            if f is None:
                return self._error(404, "not found")
            status = self._precondition(f, query)
            if status:
                return self._error(status, "precondition failed")
            del self.store.objects[key]
        self._reply(204)


@contextlib.contextmanager
def fake_gcs() -> Iterator[_Store]:
    """Starts the server, points TensorStore / google-cloud-storage / epath at it, cleans up after."""
    from etils.epath import backend, gpath

    store = _Store()
    store.objects.clear()
    handler = type("Handler", (_Handler,), {"store": store})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {"TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token",
           "STORAGE_EMULATOR_HOST": url, "EPATH_USE_TF": "false"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    for proto in ("gs", "gcs"):
        fsspec.register_implementation(proto, FakeGcsFileSystem, clobber=True)
    backend.fsspec_backend._get_filesystem.cache_clear()
    gpath._is_tf_installed.cache_clear()  # it caches EPATH_USE_TF
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        backend.fsspec_backend._get_filesystem.cache_clear()
        gpath._is_tf_installed.cache_clear()
        store.objects.clear()
