"""The address guard: refusal decisions with resolvers we control, pinning on loopback.

Nothing here connects beyond loopback: refused addresses are refused before any connection,
and the pinning tests allow-list 127.0.0.1 and point made-up names at it.
"""

import ipaddress
import socket
import ssl
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from integrations.adapter import ApiAdapter
from integrations.errors import BadRequest, BlockedAddress
from integrations.guard import AddressGuard, system_resolver
from tests.certificates import make_certificate
from tests.fakes.base import Behaviour, FakeServer


class Resolver:
    """A DNS we control: name -> list of answers (one list per successive lookup)."""

    def __init__(self, answers: dict):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls = []

    def __call__(self, host, port):
        self.calls.append(host)
        answer = self.answers.get(host)
        if answer is None:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        # A list of lists is a sequence of answers over time (DNS rebinding).
        if answer and isinstance(answer[0], list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer


BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
    "224.0.0.251",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_answers_are_refused(address):
    guard = AddressGuard(resolver=Resolver({"evil.test": [address]}))
    with pytest.raises(BlockedAddress) as info:
        guard.check("http://evil.test/path")
    assert "HTTP_ALLOWED_PRIVATE_TARGETS" in info.value.message
    assert not info.value.retryable


@pytest.mark.parametrize("address", ["127.0.0.1", "[::1]", "[::ffff:7f00:1]", "10.1.1.1"])
def test_literal_addresses_are_refused_without_resolving(address):
    resolver = Resolver({})
    with pytest.raises(BlockedAddress):
        AddressGuard(resolver=resolver).check(f"http://{address}:8080/")
    assert resolver.calls == []


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "0177.0.0.1", "localhost"])
def test_numeric_tricks_resolve_to_loopback_and_are_refused(host):
    # The system resolver turns these into 127.0.0.1 locally (no DNS query leaves the host).
    with pytest.raises(BlockedAddress):
        AddressGuard(resolver=system_resolver).check(f"http://{host}/")


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_answers_pass_and_are_returned_for_pinning(address):
    target = AddressGuard(resolver=Resolver({"example.test": [address]})).check(
        "https://Example.TEST./x"
    )
    assert (target.host, target.port, target.scheme) == ("example.test", 443, "https")
    assert ipaddress.ip_address(target.address) == ipaddress.ip_address(address)


def test_one_private_answer_among_public_ones_refuses_the_name():
    resolver = Resolver({"mixed.test": ["93.184.215.14", "10.0.0.7"]})
    with pytest.raises(BlockedAddress, match="10.0.0.7"):
        AddressGuard(resolver=resolver).check("http://mixed.test/")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.test/", "file:///etc/passwd", "gopher://x/", "http:///nohost", "nonsense"],
)
def test_only_http_urls_with_a_host(url):
    with pytest.raises(BlockedAddress):
        AddressGuard(resolver=Resolver({"example.test": ["93.184.215.14"]})).check(url)


def test_unresolvable_names_are_refused():
    with pytest.raises(BlockedAddress, match="cannot resolve"):
        AddressGuard(resolver=Resolver({})).check("http://nowhere.test/")


def test_allow_list_by_network_and_by_name():
    resolver = Resolver({"db.internal": ["10.1.2.3"], "wiki.internal": ["192.168.0.5"]})
    guard = AddressGuard(allowed=["10.0.0.0/8", "wiki.internal"], resolver=resolver)
    assert guard.check("http://db.internal/").address == "10.1.2.3"
    assert guard.check("http://wiki.internal/").address == "192.168.0.5"
    assert guard.check("http://10.9.9.9/").address == "10.9.9.9"
    with pytest.raises(BlockedAddress):
        guard.check("http://127.0.0.1/")


def test_allow_list_comes_from_settings(settings):
    settings.HTTP_ALLOWED_PRIVATE_TARGETS = ["127.0.0.1"]
    assert AddressGuard.from_settings().check("http://127.0.0.1:9/").address == "127.0.0.1"


# --- Pinning and redirects against a loopback server -------------------------------------------


class EchoServer(FakeServer):
    """Echoes the Host header; ``/redirect?to=URL&status=N`` redirects."""

    def handle(self, handler, request, behaviour: Behaviour):
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        if parts.path == "/loop":
            handler.send_bytes(302, b"", "text/plain", headers={"Location": "/loop"})
            return
        if parts.path == "/redirect":
            status = int(query.get("status", ["302"])[0])
            handler.send_bytes(status, b"", "text/plain", headers={"Location": query["to"][0]})
            return
        handler.send_json(
            200,
            {
                "host": request.headers.get("Host"),
                "method": request.method,
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "api_key": request.headers.get("X-Api-Key"),
                "body": request.body.decode(),
            },
        )


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


def guarded(resolver, **kwargs):
    guard = AddressGuard(allowed=["127.0.0.1/32"], resolver=resolver)
    return ApiAdapter(provider="http", guard=guard, max_retries=0, **kwargs)


def test_connection_is_pinned_to_the_checked_address_and_keeps_the_name(echo):
    # "api.example.test" exists only in our resolver: the request can only succeed if the
    # connection goes to the checked address rather than resolving the name again.
    resolver = Resolver({"api.example.test": ["127.0.0.1"]})
    data = guarded(resolver).request_json("GET", f"http://api.example.test:{echo.port}/hello")
    assert data["host"] == f"api.example.test:{echo.port}"
    assert data["path"] == "/hello"
    assert resolver.calls == ["api.example.test"]


def test_dns_rebinding_cannot_move_a_checked_request(echo):
    # First answer passes the check; any later lookup would say 10.0.0.1.
    resolver = Resolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    adapter = guarded(resolver)
    assert adapter.request_json("GET", f"http://rebind.test:{echo.port}/")["host"]
    assert resolver.calls == ["rebind.test"]
    with pytest.raises(BlockedAddress, match="10.0.0.1"):
        adapter.request("GET", f"http://rebind.test:{echo.port}/")


def test_refused_target_raises_before_connecting(echo):
    resolver = Resolver({"evil.test": ["127.0.0.1"]})
    adapter = ApiAdapter(provider="http", guard=AddressGuard(resolver=resolver))
    with pytest.raises(BlockedAddress):
        adapter.request("GET", f"http://evil.test:{echo.port}/")
    assert echo.requests == []


def test_redirect_to_a_private_address_is_refused(echo):
    resolver = Resolver({"start.test": ["127.0.0.1"]})
    adapter = guarded(resolver)
    url = f"http://start.test:{echo.port}/redirect?to=http://169.254.169.254/latest/meta-data"
    with pytest.raises(BlockedAddress, match="169.254.169.254"):
        adapter.request("GET", url)
    assert [r.path.split("?")[0] for r in echo.requests] == ["/redirect"]


def test_redirects_are_followed_by_hand_and_rechecked(echo):
    resolver = Resolver({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    adapter = guarded(resolver, headers={"Authorization": "Bearer user-secret"})
    target = f"http://b.test:{echo.port}/final"
    data = adapter.request_json("GET", f"http://a.test:{echo.port}/redirect?to={target}")
    assert data["host"] == f"b.test:{echo.port}"
    assert resolver.calls == ["a.test", "b.test"]
    # Credentials for a.test never reach b.test.
    assert data["authorization"] is None


def test_same_host_redirect_keeps_credentials_and_303_becomes_get(echo):
    resolver = Resolver({"a.test": ["127.0.0.1"]})
    adapter = guarded(resolver, headers={"Authorization": "Bearer k"})
    data = adapter.request_json(
        "POST", f"http://a.test:{echo.port}/redirect?status=303&to=/after", json={"x": 1}
    )
    assert (data["method"], data["path"], data["body"]) == ("GET", "/after", "")
    assert data["authorization"] == "Bearer k"
    data = adapter.request_json(
        "POST", f"http://a.test:{echo.port}/redirect?status=307&to=/kept", json={"x": 1}
    )
    assert (data["method"], data["body"]) == ("POST", '{"x": 1}')


@pytest.fixture
def other_echo():
    with EchoServer() as server:
        yield server


@pytest.mark.parametrize("other_origin", ["host", "port"])
def test_sensitive_headers_are_dropped_on_a_redirect_to_another_origin(
    echo, other_echo, other_origin
):
    resolver = Resolver({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    adapter = guarded(resolver)
    target = (
        f"http://b.test:{echo.port}/final"
        if other_origin == "host"
        else f"http://a.test:{other_echo.port}/final"
    )
    headers = {"X-Api-Key": "k-123", "Authorization": "Bearer k-456", "X-Plain": "kept"}

    data = adapter.request_json(
        "GET",
        f"http://a.test:{echo.port}/redirect?to={target}",
        headers=headers,
        sensitive_headers=["x-api-key"],
    )

    assert data["path"] == "/final"
    assert (data["api_key"], data["authorization"]) == (None, None)
    final = (other_echo if other_origin == "port" else echo).requests[-1]
    assert final.headers.get("X-Plain") == "kept"


def test_sensitive_headers_follow_a_same_origin_redirect(echo):
    resolver = Resolver({"a.test": ["127.0.0.1"]})
    data = guarded(resolver).request_json(
        "GET",
        f"http://a.test:{echo.port}/redirect?to=/final",
        headers={"X-Api-Key": "k-123"},
        sensitive_headers=["X-Api-Key"],
    )
    assert (data["path"], data["api_key"]) == ("/final", "k-123")


def test_a_redirect_that_comes_back_does_not_get_the_secret_again(echo, other_echo):
    resolver = Resolver({"a.test": ["127.0.0.1"]})
    back = f"http://a.test:{echo.port}/final"
    away = f"http://a.test:{other_echo.port}/redirect?to={back}"
    data = guarded(resolver).request_json(
        "GET",
        f"http://a.test:{echo.port}/redirect?to={away}",
        headers={"X-Api-Key": "k-123"},
        sensitive_headers=["X-Api-Key"],
    )
    assert (data["path"], data["api_key"]) == ("/final", None)


def test_redirect_loops_stop(echo):
    resolver = Resolver({"a.test": ["127.0.0.1"]})
    with pytest.raises(BadRequest, match="more than 5 redirects"):
        guarded(resolver).request("GET", f"http://a.test:{echo.port}/loop")
    assert len(echo.requests) == 6


def test_proxy_variables_are_ignored(echo, monkeypatch):
    # A proxy would connect on our behalf and bypass the pin; this one does not even exist.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    resolver = Resolver({"a.test": ["127.0.0.1"]})
    assert guarded(resolver).request_json("GET", f"http://a.test:{echo.port}/")["host"]


# --- TLS: SNI and certificate check keep the name ---------------------------------------------


@pytest.fixture
def tls_echo(tmp_path):
    cert_path, key_path = make_certificate(tmp_path, "secure.test")
    server = EchoServer().start()
    server.sni_names = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda sock, name, ctx: server.sni_names.append(name)
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    yield server, cert_path
    server.close()


def test_https_pins_the_address_but_sends_sni_and_checks_the_certificate_for_the_name(tls_echo):
    server, ca = tls_echo
    resolver = Resolver({"secure.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    adapter = guarded(resolver)
    adapter.session.verify = str(ca)
    data = adapter.request_json("GET", f"https://secure.test:{server.port}/tls")
    assert data["host"] == f"secure.test:{server.port}"
    assert server.sni_names == ["secure.test"]
    # The same address under another name fails the certificate check: the name is verified.
    with pytest.raises(Exception, match="(?i)certificate|hostname"):
        adapter.request("GET", f"https://other.test:{server.port}/tls")


def test_pinning_to_an_ipv6_address():
    from tests.fakes import base

    class V6Server(base._Server):
        address_family = socket.AF_INET6

    class V6Echo(EchoServer):
        def start(self):
            self._server = V6Server(("::1", 0), self.handler_class, self)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
            return self

    with V6Echo() as server:
        resolver = Resolver({"six.test": ["::1"]})
        adapter = ApiAdapter(
            provider="http",
            guard=AddressGuard(allowed=["::1/128"], resolver=resolver),
            max_retries=0,
        )
        data = adapter.request_json("GET", f"http://six.test:{server.port}/v6")
        assert data["host"] == f"six.test:{server.port}"
        # A literal IPv6 URL keeps its brackets in Host.
        data = adapter.request_json("GET", f"http://[::1]:{server.port}/v6")
        assert data["host"] == f"[::1]:{server.port}"
