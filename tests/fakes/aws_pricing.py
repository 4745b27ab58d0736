"""A local stand-in for the AWS Price List API (GetProducts, JSON 1.1), with its failure mode.

Serves on-demand Linux prices for the instance types in `prices`; `fail=True` answers 500 like a
throttled or broken endpoint. Requests are recorded so tests can check the filters sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def product(instance_type: str, region: str, usd: float) -> str:
    return json.dumps({
        "product": {"attributes": {"instanceType": instance_type, "regionCode": region,
                                   "operatingSystem": "Linux"}},
        "terms": {"OnDemand": {"SKU.TERM": {"priceDimensions": {"SKU.TERM.DIM": {
            "unit": "Hrs", "pricePerUnit": {"USD": f"{usd:.10f}"}}}}}},
    })


class PricingStub:
    def __init__(self, prices: dict[str, float], fail: bool = False):
        self.prices, self.fail, self.requests = prices, fail, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.headers.get("X-Amz-Target"), body))
                if stub.fail:
                    self._send(500, {"__type": "InternalErrorException", "message": "boom"})
                    return
                filters = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
                it, region = filters.get("instanceType"), filters.get("regionCode")
                found = [product(it, region, stub.prices[it])] if it in stub.prices else []
                self._send(200, {"FormatVersion": "aws_v1", "PriceList": found})

            def _send(self, status: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("pricing", region_name="us-east-1", endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"max_attempts": 1}))

    def close(self) -> None:
        self.server.shutdown()
