#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/, from the repository's own test data:
the Kuma 2.14.3 conformance recordings (REST pages as a real control plane served them),
kuma-model's fixtures (kubectl, kumactl and REST output), examples/federate and the
shipped serve configuration. Run from anywhere: `python3 fuzz/seeds.py`; it needs PyYAML
to turn the Kubernetes fixtures into the JSON the API server sends. Seeds are named by
their content's hash, as libFuzzer names what it adds, so re-running only adds files.
"""

import glob
import hashlib
import json
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
RECORDING = os.path.join(ROOT, "crates/kuma-sync/tests/conformance/kuma-2.14.3")
FIXTURES = os.path.join(ROOT, "crates/kuma-model/tests/fixtures")
# Seeds are kept small: libFuzzer's default -max_len follows the largest seed.
MAX_SEED = 16 << 10


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def rel(*parts):
    return os.path.join(ROOT, *parts)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- protobuf, the few fields the KDS messages use -------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_msg(type_url, value):
    return field(1, type_url) + field(2, value)


def kuma_resource(name, mesh, labels, spec_bytes, spec_type_url=""):
    meta = field(1, name) + (field(2, mesh) if mesh else b"")
    for k, v in sorted(labels.items()):
        meta += field(6, field(1, k) + field(2, v))
    return field(1, meta) + field(2, any_msg(spec_type_url, spec_bytes))


def delta_response(type_url, resources, removed=(), nonce="1"):
    out = b""
    for key, version, kr in resources:
        out += field(
            2,
            field(3, key) + field(1, version)
            + field(2, any_msg("type.googleapis.com/kuma.mesh.v1alpha1.KumaResource", kr)),
        )
    out += field(4, type_url) + field(5, nonce)
    for r in removed:
        out += field(6, r)
    return out


def pages():
    """Every distinct REST page of the recording, parsed, with its file's text."""
    seen = set()
    for path in sorted(glob.glob(os.path.join(RECORDING, "*/*/*.json"))):
        data = read(path)
        if data in seen:
            continue
        seen.add(data)
        yield os.path.basename(path), data, json.loads(data)


def kube_objects():
    """Every Kubernetes object in the fixtures, as the API server's JSON would hold it."""
    for path in sorted(glob.glob(os.path.join(FIXTURES, "**/*.yaml"), recursive=True)):
        for doc in yaml.safe_load_all(read(path)):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            if doc["kind"].endswith("List"):
                yield doc, True
                for item in doc.get("items") or []:
                    yield item, False
            else:
                yield doc, False


def main():
    # rest_page and resource_reader: the recorded pages, as served.
    for name, data, page in pages():
        write("rest_page", data)
        if name != "root.json":
            write("resource_reader", data)
        # A page that says more follows, as Kuma's first page of many.
        if isinstance(page, dict) and "items" in page:
            more = dict(page, next="http://kuma-control-plane.kuma-system:5681/"
                        "meshtimeouts?offset=1000&size=1000", total=2000)
            write("rest_page", json.dumps(more))
    # resource_reader: every fixture and example as written.
    for path in glob.glob(os.path.join(FIXTURES, "**/*.*"), recursive=True) + glob.glob(
        rel("examples/federate/*.yaml")
    ):
        write("resource_reader", read(path))

    # kds_response: the recorded resources, as the global sends them on KDS.
    for name, data, page in pages():
        items = page.get("items") if isinstance(page, dict) else None
        if not items:
            continue
        by_type = {}
        for item in items:
            by_type.setdefault(item.get("type", ""), []).append(item)
        for rtype, group in by_type.items():
            resources = []
            for item in group:
                mesh = item.get("mesh", "")
                if "spec" in item:
                    spec = json.dumps(item["spec"], separators=(",", ":")).encode()
                    write("kds_response", spec)
                    type_url = ""
                else:
                    # Proto-based types: the probe fingerprints the bytes; any will do.
                    spec = json.dumps(item, separators=(",", ":")).encode()
                    type_url = "type.googleapis.com/kuma.mesh.v1alpha1." + rtype
                kr = kuma_resource(item["name"], mesh, item.get("labels") or {}, spec, type_url)
                resources.append((f"{item['name']}.{mesh}", "v1", kr))
            write("kds_response", delta_response(rtype, resources))
            write("kds_response", delta_response(rtype, resources[:1], removed=["gone.default"], nonce="2"))

    # kube_object and kube_watch_event: the fixtures' objects.
    events = []
    for obj, is_list in kube_objects():
        write("kube_object", json.dumps(obj))
        if not is_list:
            events.append(obj)
            write("kube_watch_event", json.dumps({"type": "ADDED", "object": obj}))
    for i in range(0, len(events), 3):
        lines = []
        for obj in events[i:i + 3]:
            lines.append({"type": "ADDED", "object": obj})
            lines.append({"type": "MODIFIED", "object": obj})
        lines.append({"type": "BOOKMARK", "object": {"kind": events[i]["kind"],
                     "apiVersion": "kuma.io/v1alpha1", "metadata": {"resourceVersion": "12345"}}})
        lines.append({"type": "DELETED", "object": events[i]})
        lines.append({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                     "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}})
        write("kube_watch_event", "\n".join(json.dumps(l) for l in lines) + "\n")

    # config_file: the shipped configuration and the forms its tests use.
    write("config_file", read(rel("deploy/kubernetes/kuma-sync.yaml")))
    for text in [
        'listen: ":9465"\nglobal:\n  api: {url: "http://global:5681", token: t}\nzones:\n'
        '  - name: zone-1\n    kubernetes: {kubeconfig: kubeconfigs/zone-1}\n'
        '  - name: zone-2\n    api: {url: "http://zone-2:5681"}\n'
        "intervals: {poll: 5s, stallThreshold: 2m}\ntypes: [mcb, MeshTimeout]\n",
        'global: {api: {url: "http://g", tokenFile: /no/such/file, caFile: /no/ca.pem}}\n',
        'global: {api: {url: "http://g"}}\nmetrics: {basicAuth: {username: u, password: p}, '
        "tls: {certFile: c.pem, keyFile: k.pem}}\n",
        "global: {kubernetes: {context: global}, environment: universal}\nkumaVersion: 2.14.3\n"
        "meshes: [default]\nsystemNamespace: kuma-system\n"
        "kds: {address: grpcs://global:5685, skipVerify: true, zoneName: kuma-sync-probe}\n",
    ]:
        write("config_file", text)


if __name__ == "__main__":
    main()
