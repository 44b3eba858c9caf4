"""A SOC client for mxrep, as a SOC engineer would write one: Python, grpcio, stubs generated from
the repository's .proto files, a reader certificate. It looks up addresses in bulk, lists bans with
filters page by page, and follows the ban list for a while; it prints what it saw as one JSON
document for the test that runs it (tests/tests/soc.rs) to check against mxrepctl.

usage: soc_client.py ENDPOINT PKI_DIR PROTO_DIR WORK_DIR ADDRESS...
"""

import json
import os
import subprocess
import sys
import time

endpoint, pki, proto_dir, work = sys.argv[1:5]
addresses = sys.argv[5:]

gen = os.path.join(work, "gen")
os.makedirs(gen, exist_ok=True)
protos = [os.path.join("mxrep", "v1", f) for f in ("types.proto", "admin.proto", "agent.proto", "query.proto")]
subprocess.run(
    [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir, "--python_out", gen, "--grpc_python_out", gen] + protos,
    check=True,
)
sys.path.insert(0, gen)

import grpc  # noqa: E402
from mxrep.v1 import agent_pb2, agent_pb2_grpc, query_pb2, query_pb2_grpc  # noqa: E402


def read(name):
    with open(os.path.join(pki, name), "rb") as f:
        return f.read()


creds = grpc.ssl_channel_credentials(
    root_certificates=read("ca.pem"),
    private_key=read("reader-key.pem"),
    certificate_chain=read("reader.pem"),
)
channel = grpc.secure_channel(endpoint, creds)
query = query_pb2_grpc.QueryStub(channel)
out = {}

looked = query.LookupAddresses(query_pb2.LookupAddressesRequest(addresses=addresses), timeout=10)
out["lookup"] = [
    {
        "query": r.query,
        "error": r.error,
        "banned": bool(r.info.covering_bans) if r.HasField("info") else None,
        "covering": [b.prefix for b in r.info.covering_bans] if r.HasField("info") else [],
        "evidence_rules": [e.rule for b in r.info.covering_bans for e in b.evidence] if r.HasField("info") else [],
    }
    for r in looked.results
]

pages, token = [], ""
while True:
    page = query.QueryBans(
        query_pb2.QueryBansRequest(source="manual", within="203.0.113.0/24", page_size=2, page_token=token),
        timeout=10,
    )
    pages.append({"bans": [(b.prefix, b.author) for b in page.bans], "total": page.total})
    token = page.next_page_token
    if not token:
        break
out["pages"] = pages

try:
    query.QueryBans(query_pb2.QueryBansRequest(source="nonsense"), timeout=10)
    out["bad_filter"] = "accepted"
except grpc.RpcError as e:
    out["bad_filter"] = e.code().name

# Follow the ban list: the snapshot, then changes until one arrives or 15 s pass.
agent = agent_pb2_grpc.AgentStub(channel)
stream = agent.WatchBans(agent_pb2.WatchBansRequest(from_version=0, mx_host="soc"), timeout=20)
changes, snapshot = [], None
deadline = time.time() + 15
for update in stream:
    if update.HasField("snapshot"):
        snapshot = sorted(b.prefix for b in update.snapshot.bans)
        print("WATCHING", file=sys.stderr, flush=True)
    else:
        c = update.change
        changes.append({"prefix": c.ban.prefix, "author": c.ban.author, "reason": c.ban.reason})
        break
    if time.time() > deadline:
        break
stream.cancel()
out["snapshot"] = snapshot
out["changes"] = changes
print(json.dumps(out))
