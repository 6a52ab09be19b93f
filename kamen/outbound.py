"""Where kamen may connect to: supplier APIs, alert robots, SMTP servers.

Addresses an admin types are fetched by the server, so they must not reach
the machine's cloud metadata service or other link-local addresses
(169.254.0.0/16, fe80::/10) — not by a literal, not behind a DNS name, not as
an IPv4-mapped IPv6 address. Loopback and private networks stay allowed: a
主站 on the same VPS or LAN is normal. The check runs when the address is
saved and again before every connection (a DNS name may change meanwhile).
The connection itself resolves the name once more, so a DNS server that
answers differently within that instant is not stopped here: pointing a name
at a private address is allowed anyway, and the metadata service is what
this guard is for.
"""
import ipaddress
import socket
from urllib.parse import urlsplit

# Metadata services that are not link-local: Alibaba Cloud, AWS over IPv6.
METADATA_ADDRESSES = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
METADATA_NAMES = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                  "instance-data.ec2.internal"}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(ValueError):
    """str() says, in Chinese, which address was refused and why."""


def _embedded_ipv4(ip):
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refused_reason(ip):
    """Why connecting to this IP address is refused, or None."""
    ip = _embedded_ipv4(ip) or ip
    if ip in METADATA_ADDRESSES or ip == ipaddress.ip_address("169.254.169.254"):
        return "这是云服务器的元数据服务地址"
    if ip.is_link_local:
        return "这是链路本地地址（169.254.x.x / fe80::），不是正常的服务器地址"
    return None


def check_host(host, what="地址", *, resolve=True):
    """Raise AddressRefused when ``host`` (a name or literal) is or resolves to a refused address.

    A name that does not resolve passes: connecting will then fail with its own reason."""
    host = (host or "").strip().strip("[]").rstrip(".").lower()
    if not host:
        return
    if host in METADATA_NAMES:
        raise AddressRefused(f"{what}不允许使用 {host}：这是云服务器的元数据服务")
    try:
        addresses = {ipaddress.ip_address(host.split("%")[0])}
    except ValueError:
        if not resolve:
            return
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    for ip in sorted(addresses, key=str):
        reason = refused_reason(ip)
        if reason:
            shown = host if str(ip) == host else f"{host}（解析为 {ip}）"
            raise AddressRefused(f"{what}不允许使用 {shown}：{reason}")


def check_url(url, what="地址", *, resolve=True):
    """check_host for a URL's host; returns a Chinese warning for plain http, else None."""
    parts = urlsplit((url or "").strip())
    check_host(parts.hostname, what, resolve=resolve)
    if parts.scheme == "http":
        return f"{what}使用 http://，密钥和数据以明文传输，建议改用 https://"
    return None
