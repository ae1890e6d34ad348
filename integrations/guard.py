"""The address guard for user-supplied URLs (the workflow ``http`` node).

A user's URL could point the server at itself, at the cloud metadata service or at the internal
network (SSRF). The guard resolves the host once, refuses the request when ANY resolved address
is loopback, private, link-local, multicast, reserved, unspecified or otherwise not global
(IPv4 and IPv6, including IPv4-mapped, 6to4 and Teredo forms that embed an IPv4 address), and
returns the checked address. The adapter then connects to exactly that address
(``PinnedHTTPAdapter``) while the ``Host`` header, TLS SNI and certificate check keep the name,
so a DNS answer that changes between the check and the connection (rebinding) cannot redirect
it. Redirects are followed by hand and every hop is checked again. Proxy variables are ignored
(``trust_env=False``): a proxy would connect on our behalf and bypass the pin.

``HTTP_ALLOWED_PRIVATE_TARGETS`` lists host names or networks (CIDR or single addresses) that a
deployment needs to reach although they are internal. Provider base URLs are operator settings
and do not go through the guard.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from .errors import BlockedAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> addresses; tests pass their own, production uses getaddrinfo.
Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = {"http", "https"}


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    # IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) carry one in the low bits.
    packed = address.packed
    if packed[:12] == bytes(12) or packed[:12] == bytes.fromhex("0064ff9b0000000000000000"):
        return ipaddress.IPv4Address(packed[12:])
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why this address may not be reached from a user's URL, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is the IPv4 host itself: judge it as IPv4.
        inner = refusal_reason(address.ipv4_mapped)
        return f"{inner} (IPv4-mapped)" if inner else None
    checks = (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal_reason(embedded)
            if inner:
                return f"{inner} (embedded in {address})"
    if not address.is_global:
        return "a non-public address"
    return None


@dataclass(frozen=True)
class CheckedTarget:
    url: str
    scheme: str
    host: str  # the name as written (lower-cased), used for Host and SNI
    port: int
    address: str  # the checked IP the connection is pinned to


class AddressGuard:
    def __init__(
        self,
        *,
        allowed: Iterable[str] = (),
        resolver: Resolver | None = None,
    ):
        self.resolver = resolver or system_resolver
        self.allowed_hosts: set[str] = set()
        self.allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowed:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_hosts.add(entry.rstrip("."))

    @classmethod
    def from_settings(cls, *, resolver: Resolver | None = None) -> AddressGuard:
        from django.conf import settings

        return cls(allowed=settings.HTTP_ALLOWED_PRIVATE_TARGETS, resolver=resolver)

    def _allowed(self, host: str, address: IPAddress) -> bool:
        if host in self.allowed_hosts:
            return True
        return any(address in network for network in self.allowed_networks)

    def check(self, url: str) -> CheckedTarget:
        """Resolve and check a URL; raise ``BlockedAddress`` with the reason when refused."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BlockedAddress(f"invalid URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise BlockedAddress(f"only http and https URLs are allowed, not {scheme or 'none'!r}")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise BlockedAddress("the URL has no host")
        port = port or (443 if scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                resolved = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise BlockedAddress(f"cannot resolve {host}: {exc}") from exc
            try:
                # Scope ids (fe80::1%eth0) are dropped: the address class is what matters.
                addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
            except ValueError as exc:
                raise BlockedAddress(f"{host} resolved to an invalid address") from exc
            if not addresses:
                raise BlockedAddress(f"{host} did not resolve to any address")
        # Every answer must pass: a name that resolves to one public and one private address
        # would otherwise let the connection pick the private one.
        for address in addresses:
            if self._allowed(host, address):
                continue
            reason = refusal_reason(address)
            if reason:
                raise BlockedAddress(
                    f"{host} resolves to {address}, {reason}; add it to "
                    "HTTP_ALLOWED_PRIVATE_TARGETS if this deployment must reach it"
                )
        return CheckedTarget(
            url=url, scheme=scheme, host=host, port=port, address=str(addresses[0])
        )


class PinnedHTTPAdapter(HTTPAdapter):
    """Connects to the address the guard checked, not to whatever DNS answers now.

    The pin travels on the prepared request (``request.pinned_address``), so one adapter and
    its pools serve every thread safely. The pool is keyed by the IP and by the server name, so
    TLS still sends SNI for the name and checks the certificate against it.
    """

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        address = getattr(request, "pinned_address", None)
        if address is None:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        name = host_params["host"]
        host_params["host"] = address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
