"""Who is trusted, by address or by network.

``FCGI_WEB_SERVER_ADDRS`` (who may connect over TCP), ``--status-allow`` (who may see the
status page over HTTP) and ``--forwarded-allow-ips`` / ``FORWARDED_ALLOW_IPS`` (whose proxy
headers :class:`~fcgikit.middleware.ProxyFix` believes) all take the same list: IPv4 and
IPv6 addresses (``10.0.0.5``, ``::1``), networks in CIDR notation (``10.0.0.0/8``,
``fd00::/8``), or ``*`` for everyone, separated by commas.

Addresses are compared normalised: ``0:0:0:0:0:0:0:1`` is ``::1``; an IPv4-mapped IPv6
address (``::ffff:10.0.0.5``, how a dual-stack socket reports an IPv4 peer) is its IPv4
address, in the list and when checked; an IPv6 zone (``%eth0``) is ignored. A network with
host bits set (``10.0.0.1/8``) is refused rather than guessed at, as gunicorn does.

The check runs on every accepted connection (FCGI_WEB_SERVER_ADDRS) or request (ProxyFix),
so it stays cheap: an address written the way it is listed is one set look-up, and any
other is parsed once and its verdict remembered. The addresses in front of an app server
are few (its web servers, their proxies); the memo is bounded all the same, so a stream of
new addresses cannot grow it.

>>> trusted = TrustedNetworks.parse("127.0.0.1, 10.0.0.0/8, fd00::/8", "FORWARDED_ALLOW_IPS")
>>> [a in trusted for a in ("127.0.0.1", "10.1.2.3", "::ffff:10.1.2.3", "fd00::7", "192.0.2.1")]
[True, True, True, True, False]
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from fcgikit.errors import ConfigError

__all__ = ["TrustedNetworks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: how many verdicts on addresses not written as listed are remembered
_MEMO_SIZE = 1024
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_ACCEPTED = (
    "write IP addresses (10.0.0.5, ::1) or networks (10.0.0.0/8, fd00::/8) separated by "
    "commas, or * for everyone"
)


class TrustedNetworks:
    """A parsed list of addresses and networks; ``address in networks`` checks one."""

    __slots__ = ("_verdicts", "addresses", "everyone", "networks")

    def __init__(
        self,
        addresses: Iterable[str] = (),
        networks: Iterable[Network] = (),
        *,
        everyone: bool = False,
    ) -> None:
        #: normalised single addresses (dict: a set that keeps the order they were given)
        self.addresses = tuple(dict.fromkeys(addresses))
        self.networks = tuple(dict.fromkeys(networks))
        self.everyone = everyone
        self._verdicts: dict[str, bool] = dict.fromkeys(self.addresses, True)

    @classmethod
    def parse(cls, entries: str | Iterable[str], source: str) -> TrustedNetworks:
        """Read a comma-separated list (or several); ``source`` names the variable or flag
        in the ConfigError a bad entry raises ("": the caller names it)."""
        addresses: list[str] = []
        networks: list[Network] = []
        everyone = False
        for item in [entries] if isinstance(entries, str) else entries:
            for text in item.split(","):
                entry = text.strip()
                if entry == "*":
                    everyone = True
                elif entry:
                    network = _parse_entry(entry, source)
                    if network.num_addresses == 1:
                        addresses.append(str(network.network_address))
                    else:
                        networks.append(network)
        if everyone:
            return cls(everyone=True)
        return cls(addresses, networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        verdict = self._verdicts.get(address)
        if verdict is None:
            verdict = self._judge(address)
            if len(self._verdicts) >= _MEMO_SIZE + len(self.addresses):
                self._verdicts = dict.fromkeys(self.addresses, True)
            self._verdicts[address] = verdict
        return verdict

    def _judge(self, address: str) -> bool:
        if self.everyone:
            return True
        ip = _parse_address(address)
        if ip is None:
            return False
        return str(ip) in self.addresses or any(ip in network for network in self.networks)

    def _key(self) -> tuple[bool, frozenset[str], frozenset[Network]]:
        return self.everyone, frozenset(self.addresses), frozenset(self.networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustedNetworks) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def entries(self) -> list[str]:
        """The entries as :meth:`parse` reads them back: ``["*"]``, or addresses and networks."""
        if self.everyone:
            return ["*"]
        return [*self.addresses, *map(str, self.networks)]

    def __str__(self) -> str:
        return ", ".join(self.entries())

    def __repr__(self) -> str:
        return f"TrustedNetworks({str(self)!r})"


def _parse_entry(entry: str, source: str) -> Network:
    address, slash, prefix = entry.partition("/")
    text = address.split("%", 1)[0] + slash + prefix  # a zone names an interface, not hosts
    where = f"{source}: " if source else ""
    try:
        network: Network = ipaddress.ip_network(text)
    except ValueError:
        try:
            meant = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigError(
                f"{where}{entry!r} is not an IP address or network; {_ACCEPTED}"
            ) from None
        raise ConfigError(
            f"{where}{entry!r} has host bits set: {meant} is the network it is in; {_ACCEPTED}"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_V4_MAPPED):
        mapped = int(network.network_address) & 0xFFFFFFFF
        network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _parse_address(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
