"""TrustedNetworks: the one list of addresses and networks FCGI_WEB_SERVER_ADDRS,
--status-allow and --forwarded-allow-ips all take."""

from __future__ import annotations

import pytest

from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks

LIST = "127.0.0.1, ::1, 10.0.0.0/8, fd00::/8, 192.0.2.7/32, ::ffff:172.16.0.0/108"


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        pytest.param("127.0.0.1", True, id="v4 address as listed"),
        pytest.param("::1", True, id="v6 address as listed"),
        pytest.param("0:0:0:0:0:0:0:1", True, id="v6 address written long"),
        pytest.param("::ffff:127.0.0.1", True, id="v4-mapped v6 peer"),
        pytest.param("127.0.0.2", False, id="neighbour of a listed address"),
        pytest.param("10.0.0.0", True, id="first of a v4 network"),
        pytest.param("10.255.255.255", True, id="last of a v4 network"),
        pytest.param("11.0.0.0", False, id="just past a v4 network"),
        pytest.param("::ffff:10.1.2.3", True, id="v4-mapped peer in a v4 network"),
        pytest.param("fd00::7", True, id="in a v6 network"),
        pytest.param("FD12:3456::1", True, id="v6 upper case"),
        pytest.param("fd00::7%eth0", True, id="v6 with a zone"),
        pytest.param("fe80::1", False, id="outside every v6 network"),
        pytest.param("192.0.2.7", True, id="a /32 is an address"),
        pytest.param("192.0.2.8", False, id="next to the /32"),
        pytest.param("172.16.9.9", True, id="v4-mapped network listed as v6"),
        pytest.param("172.32.0.1", False, id="outside the mapped network"),
        pytest.param("", False, id="empty"),
        pytest.param("unix:", False, id="not an address"),
        pytest.param("localhost", False, id="a name"),
    ],
)
def test_membership(address: str, trusted: bool) -> None:
    networks = TrustedNetworks.parse(LIST, "FORWARDED_ALLOW_IPS")
    assert (address in networks) is trusted
    assert (address in networks) is trusted  # the remembered verdict is the same


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param("", "", id="empty: nobody"),
        pytest.param(" , ,", "", id="only separators"),
        pytest.param("10.0.0.1,10.0.0.0/8", "10.0.0.1, 10.0.0.0/8", id="kept in order"),
        pytest.param("0:0::1, ::1", "::1", id="duplicates once"),
        pytest.param(
            ["10.0.0.1", "fd00::/8, ::1"], "10.0.0.1, ::1, fd00::/8", id="addresses, then networks"
        ),
        pytest.param("*", "*", id="everyone"),
        pytest.param("10.0.0.1, *", "*", id="everyone wins"),
        pytest.param("10.0.0.0/255.0.0.0", "10.0.0.0/8", id="netmask"),
        pytest.param("fe80::1%eth0", "fe80::1", id="zone dropped"),
    ],
)
def test_parse_normalises(entries: str | list[str], expected: str) -> None:
    assert str(TrustedNetworks.parse(entries, "--status-allow")) == expected


def test_everyone_and_nobody() -> None:
    everyone = TrustedNetworks.parse("*", "FORWARDED_ALLOW_IPS")
    assert everyone.everyone
    assert "203.0.113.9" in everyone and "unix:" in everyone
    nobody = TrustedNetworks.parse("", "--status-allow")
    assert not nobody.everyone
    assert "127.0.0.1" not in nobody


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param("localhost", r"'localhost' is not an IP address or network", id="name"),
        pytest.param("10.0.0.0/33", r"'10.0.0.0/33' is not an IP address", id="prefix too long"),
        pytest.param("10.0.0.1/8", r"'10.0.0.1/8' has host bits set: 10.0.0.0/8", id="host bits"),
        pytest.param("fd00::1/8", r"'fd00::1/8' has host bits set: fd00::/8", id="v6 host bits"),
        pytest.param("10.0.0.0/8 fd00::/8", r"'10.0.0.0/8 fd00::/8' is not", id="no comma"),
    ],
)
def test_a_bad_entry_names_the_source_and_what_is_accepted(entries: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        TrustedNetworks.parse(f"127.0.0.1, {entries}", "--status-allow")
    text = str(caught.value)
    assert text.startswith("--status-allow: ")
    assert "10.0.0.0/8" in text and "*" in text  # what to write instead


def test_equal_lists_compare_equal() -> None:
    first = TrustedNetworks.parse("::1, 10.0.0.0/8", "A")
    assert first == TrustedNetworks.parse(["0::1", "10.0.0.0/255.0.0.0"], "B")
    assert first != TrustedNetworks.parse("::1", "A")
    assert hash(first) == hash(TrustedNetworks.parse("::1,10.0.0.0/8", "C"))
    assert first != "::1, 10.0.0.0/8"
    assert repr(first) == "TrustedNetworks('::1, 10.0.0.0/8')"


def test_the_memo_of_verdicts_is_bounded() -> None:
    networks = TrustedNetworks.parse("10.0.0.0/8", "FCGI_WEB_SERVER_ADDRS")
    for i in range(5000):
        assert f"10.0.{i // 256}.{i % 256}" in networks
        assert f"11.0.{i // 256}.{i % 256}" not in networks
    assert len(networks._verdicts) <= 1024  # a stream of new addresses cannot grow it


def test_the_module_example_runs() -> None:
    import doctest

    import fcgikit.networks

    result = doctest.testmod(fcgikit.networks)
    assert result.attempted > 0 and result.failed == 0


def test_the_forwarded_allow_ips_default_is_written_as_parse_reads_it() -> None:
    """The default is made from its addresses as parse() writes them back, not parsed at
    every start: it must be what parsing them makes, in --help and in what it trusts."""
    from fcgikit.server.settings import CommandSettings
    from fcgikit.server.settings.command import DEFAULT_FORWARDED_ALLOW_IPS

    default = CommandSettings().forwarded_allow_ips
    parsed = TrustedNetworks.parse(",".join(DEFAULT_FORWARDED_ALLOW_IPS), "")
    assert default == parsed
    assert default.entries() == parsed.entries() == ["127.0.0.1", "::1"]
    assert "0:0:0:0:0:0:0:1" in default and "::ffff:127.0.0.1" in default
