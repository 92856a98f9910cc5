#!/usr/bin/env python3
"""Writes a one-layer OCI image archive holding the host's static busybox, for `ctr images import`:
the proof needs an image without a registry. Usage: oci_image.py BUSYBOX OUT.tar NAME"""
import hashlib, io, json, sys, tarfile

busybox, out, name = sys.argv[1:4]
def add_bytes(tar, name, data, mode=0o644):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.mtime = 0
    tar.addfile(ti, io.BytesIO(data))
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"]:
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
    add_bytes(t, "bin/busybox", open(busybox, "rb").read(), 0o755)
    for tool in ["sh", "cat", "sleep", "grep", "ls"]:
        ti = tarfile.TarInfo("bin/" + tool); ti.type = tarfile.SYMTYPE; ti.linkname = "busybox"; t.addfile(ti)
layer = layer.getvalue()
ld = hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["/bin/sleep", "100000"], "Env": ["PATH=/bin"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + ld]}}).encode()
cd = hashlib.sha256(config).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + ld, "size": len(layer)}]}).encode()
md = hashlib.sha256(manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + md, "size": len(manifest),
    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "nri"}}]}).encode()
with tarfile.open(out, "w") as t:
    add_bytes(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add_bytes(t, "index.json", index)
    for d, data in [(ld, layer), (cd, config), (md, manifest)]:
        add_bytes(t, "blobs/sha256/" + d, data)
