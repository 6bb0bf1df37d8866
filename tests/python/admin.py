"""The admin HTTP listener in the Python tests (test_admin.py, test_dashboard.py): a ringmq
broker with `[admin]` on a free port, and a small HTTP client whose every request is
bounded.
"""

import http.client
import json
import shutil
import urllib.parse

import pytest

from conftest import Broker, free_port, wait_port

HTTP_TIMEOUT = 5.0


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"not JSON (HTTP {self.status}): {self.body[:300]!r}") from None

    def __repr__(self):
        return f"<HTTP {self.status} {dict(self.headers)} {self.body[:300]!r}>"


class Admin:
    """Requests to the admin listener at host:port."""

    def __init__(self, host, port, token=None):
        self.host = host
        self.port = port
        self.token = token

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def request(self, method, path, token="default", headers=None):
        """`token`: "default" sends this Admin's token (if any), None sends no
        Authorization header, any other string is sent as the bearer token."""
        token = self.token if token == "default" else token
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def get_json(self, path, **kwargs):
        resp = self.get(path, **kwargs)
        assert resp.status == 200, f"GET {path}: {resp!r}"
        assert resp.headers.get("Content-Type", "").startswith("application/json"), (
            f"GET {path}: Content-Type {resp.headers.get('Content-Type')!r}"
        )
        return resp.json()

    def stats(self):
        return self.get_json("/api/v1/stats")

    def pages(self, path, key, limit, **params):
        """Follows `next` from the first page of `path` (limit `limit`) until it is null;
        returns (the pages' `total`s, every item in order). Fails past 1000 pages."""
        totals, items, after = [], [], None
        for _ in range(1000):
            query = dict(params, limit=limit)
            if after is not None:
                query["after"] = after
            page = self.get_json(f"{path}?{urllib.parse.urlencode(query)}")
            assert len(page[key]) <= limit, f"{len(page[key])} items in a page of limit {limit}"
            totals.append(page["total"])
            items.extend(page[key])
            after = page["next"]
            if after is None:
                return totals, items
            assert page[key], f"an empty page with next={after!r}"
        raise AssertionError(f"{path}: still a next page after 1000 pages")


def admin_toml(port, token=None, extra=""):
    text = f'[admin]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    if token is not None:
        text += f'token = "{token}"\n'
    return text + extra


@pytest.fixture
def admin_broker(request, tmp_path):
    """A ringmq broker with the admin listener on; options from
    @pytest.mark.admin(shards=2, token=None, toml="extra config"). The broker gets
    `.admin`, an Admin client (sending the token when one is set)."""
    marker = request.node.get_closest_marker("admin")
    options = dict(marker.kwargs) if marker else {}
    port = free_port()
    data = tmp_path / "broker"
    data.mkdir()
    token = options.get("token")
    broker = Broker(
        data,
        shards=options.get("shards", 2),
        ringmq_toml=admin_toml(port, token, options.get("toml", "")),
    )
    try:
        wait_port(broker.host, port, broker.proc)
    except BaseException:
        broker.stop()
        raise
    broker.admin = Admin(broker.host, port, token)
    yield broker
    broker.stop()
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        print(f"--- ringmq broker on port {broker.port}, last log lines ---\n{broker.log_tail()}")
    shutil.rmtree(data, ignore_errors=True)

