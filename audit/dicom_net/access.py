"""Who may send to the receiver: calling AE titles, optionally pinned to a peer address.

A rule is ``AE_TITLE`` (that calling AE title from any address) or ``AE_TITLE@ADDRESS`` (only
from that address; ADDRESS is an IP address or a network such as 10.1.2.0/24). ``*`` as the AE
title means any title (``*@10.1.2.7``: whatever that machine calls itself). Rules come from the
``receiver_allowed`` setting (an administrator's, audited) and from ``--allow`` on the command
line; both lists are allowed.

With no rule at all, only peers on the loopback address are accepted: a receiver started
without configuration takes reports from this machine only, never from the whole network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from audit.errors import FieldError, ValidationFailed

#: A DICOM AE title: 1-16 characters of the default repertoire, no backslash or control code.
_AE_TITLE = re.compile(r"^[ -\[\]-~]{1,16}$")
ANY_TITLE = "*"


@dataclass(frozen=True)
class AllowRule:
    """One allowed sender: an AE title (or any) and optionally an address or network."""

    ae_title: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    def allows(self, calling_ae: str, address: str) -> bool:
        if self.ae_title != ANY_TITLE and calling_ae.strip() != self.ae_title:
            return False
        if self.network is None:
            return True
        try:
            return ipaddress.ip_address(address) in self.network
        except ValueError:
            return False

    def __str__(self) -> str:
        return self.ae_title + (f"@{self.network}" if self.network is not None else "")


def parse_rule(text: str, field: str = "allow") -> AllowRule:
    """One ``AE_TITLE[@ADDRESS]``; a ValidationFailed naming ``field`` and the form otherwise."""
    title, _, address = text.strip().partition("@")
    title = title.strip()
    if not (title == ANY_TITLE or _AE_TITLE.match(title)) or not title.strip():
        raise ValidationFailed([FieldError(field, f"{text!r} is not AE_TITLE or "
                                           "AE_TITLE@ADDRESS (an AE title is 1 to 16 "
                                           "characters, no backslash; * means any title)")])
    if not address:
        if title == ANY_TITLE:
            raise ValidationFailed([FieldError(field, "'*' alone would allow everyone: give "
                                               "an address, as *@10.1.2.7")])
        return AllowRule(title)
    try:
        network = ipaddress.ip_network(address.strip(), strict=False)
    except ValueError:
        raise ValidationFailed([FieldError(field, f"{address!r} in {text!r} is not an IP "
                                           "address or network (10.1.2.7, 10.1.2.0/24)")]
                               ) from None
    return AllowRule(title, network)


def parse_rules(text: str, field: str = "receiver_allowed") -> list[AllowRule]:
    """The rules of a setting's text: separated by spaces or commas."""
    return [parse_rule(item, field) for item in re.split(r"[\s,]+", text or "") if item]


@dataclass(frozen=True)
class AccessPolicy:
    """The rules in force; with none, loopback peers only (module docstring)."""

    rules: tuple[AllowRule, ...] = ()

    @classmethod
    def combine(cls, *groups: Iterable[AllowRule]) -> AccessPolicy:
        return cls(tuple(rule for group in groups for rule in group))

    def refusal(self, calling_ae: str, address: str) -> str | None:
        """Why this peer may not send, in words; None when it may."""
        calling = calling_ae.strip()
        if not self.rules:
            if _loopback(address):
                return None
            return (f"calling AE title {calling!r} from {address}: no sender is allowed yet, "
                    "so only this machine (loopback) may send; an administrator adds senders "
                    "in the receiver_allowed setting or with --allow")
        if any(rule.allows(calling, address) for rule in self.rules):
            return None
        return (f"calling AE title {calling!r} from {address} is not on the allow list "
                f"({', '.join(str(r) for r in self.rules)})")

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.rules) or "loopback peers only"


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))
