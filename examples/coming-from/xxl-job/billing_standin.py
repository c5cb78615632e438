"""A stand-in for the Java billing service of docs/coming-from.md, to try jobs.toml without
one: it serves POST /jobs/settle-invoices (200) and POST /jobs/reconcile-ledger (503, the
ledger is locked) on a free loopback port, and prints `BILLING_URL=...` to export.

    python examples/coming-from/xxl-job/billing_standin.py
"""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Billing(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        param = json.loads(self.rfile.read(length) or b"{}").get("param") if length else None
        if self.path == "/jobs/settle-invoices":
            status, body = 200, {"settled": 3, "param": param}
        elif self.path == "/jobs/reconcile-ledger":
            status, body = 503, {"error": "ledger is locked"}
        else:
            status, body = 404, {"error": "no such job handler"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Billing)
    print(f"BILLING_URL=http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
