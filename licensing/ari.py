"""ARI codes: the DECT Access Rights Identity that names a server and binds its licenses.

ETSI EN 300 175-6 (DECT common interface, part 6: identities and addressing)
divides ARIs into classes A to E by a 3-bit Access Rights Class (ARC). A KIRK
Wireless Server 6000 is a private multiple-cell system, the use the standard
gives to **class B** (ARC = 001, "private (PABX) multiple cell"). A class B
ARI has 31 bits::

    ARC   3 bits  001 for class B
    EIC  16 bits  Equipment Installer's Code
    FPN   8 bits  Fixed Part Number
    FPS   4 bits  Fixed Part Sub-number

**Written form accepted here:** the 31 bits as one hexadecimal number of
exactly 8 digits. The fields then fall on whole digits, ``A EEEE NN S``: the
first digit is the ARC (always ``1`` for class B), then four digits of EIC,
two of FPN and one of FPS, e.g. ``10A3F2C5`` (EIC 0A3F, FPN 2C, FPS 5).
Lower case and spaces or dashes between digits (as on a printed label) are
accepted; the canonical form is 8 upper-case digits without separators.

The system ARI, the one the handsets are subscribed to, is one for the life of
the system: the first master's (or single server's) ARI, replicated, kept
through promotion, role swaps and the replacement of a server. Which ARI a
server acts under is decided here (``system_ari_decide``): its own where that
is the system ARI, else the system ARI under the ARI swap of the backup
redundancy license (14075260), so handsets work on both servers.

Pure: no Django, no I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Container
from dataclasses import dataclass

ARI_DIGITS = 8
ARC_CLASS_B = 1
EXAMPLE = "10A3F2C5"
_HEX = "0123456789ABCDEF"
_SEPARATORS = " -"
# The ARC values of EN 300 175-6 and what each class is for.
_CLASSES = {
    0: "class A (residential and small private systems)",
    1: "class B (private multiple-cell systems)",
    2: "class C (public systems)",
    3: "class D (public access to a GSM network)",
    4: "class E (handset to handset communication)",
}
# A server's ARI is drawn from EIC x FPN x FPS: 2**28 values.
_RANDOM_BITS = 28


class AriError(ValueError):
    """Text that is not an ARI of the accepted class and written form; str() says why."""


@dataclass(frozen=True)
class AriFields:
    """The fields of a class B ARI."""

    arc: int
    eic: int
    fpn: int
    fps: int

    def describe(self) -> str:
        return f"class B, EIC {self.eic:04X}, FPN {self.fpn:02X}, FPS {self.fps:X}"


def ari_parse(text: str) -> str:
    """The canonical form of a class B ARI, or AriError naming what is wrong.

    Accepts exactly 8 hexadecimal digits, upper or lower case, with optional
    spaces or dashes between them. The first digit must be 1 (class B).
    """
    raw = str(text).strip()
    if not raw:
        raise AriError(f"an ARI is required: {ARI_DIGITS} hexadecimal digits like {EXAMPLE}")
    digits = "".join(c for c in raw.upper() if c not in _SEPARATORS)
    for char in digits:
        if char not in _HEX:
            raise AriError(
                f"{raw!r} is not an ARI: {char!r} is not a hexadecimal digit "
                f"(an ARI is {ARI_DIGITS} hexadecimal digits like {EXAMPLE})"
            )
    if len(digits) != ARI_DIGITS:
        raise AriError(
            f"{raw!r} is not an ARI: it has {len(digits)} hexadecimal digits, a class B ARI "
            f"has {ARI_DIGITS} (like {EXAMPLE})"
        )
    arc = int(digits[0], 16)
    if arc != ARC_CLASS_B:
        if arc in _CLASSES:
            what = f"that is the access rights class of {_CLASSES[arc]}"
        elif arc < 8:
            what = "that access rights class is reserved"
        else:
            what = "an ARI has 31 bits, so its first digit is at most 7"
        raise AriError(
            f"{raw!r} is not a class B ARI: it starts with {digits[0]}, and {what}; "
            f"a KWS 6000 is a private multiple-cell system with a class B ARI, whose first "
            f"digit is 1 (like {EXAMPLE})"
        )
    return digits


def ari_setting_parse(text: str) -> str:
    """The ``system.ari`` setting: an ARI, or empty while none is given yet."""
    if not str(text).strip():
        return ""
    return ari_parse(text)


def ari_fields(ari: str) -> AriFields:
    """Split a canonical ARI into its fields."""
    value = ari_to_int(ari)
    return AriFields(
        arc=value >> 28, eic=(value >> 12) & 0xFFFF, fpn=(value >> 4) & 0xFF, fps=value & 0xF
    )


def ari_to_int(ari: str) -> int:
    """The ARI's 31 bits as a number (what a license code carries)."""
    return int(ari_parse(ari), 16)


def ari_from_int(value: int) -> str:
    """The written form of 31 ARI bits; AriError if they are not a class B ARI."""
    if not 0 <= value < 1 << 32:
        raise AriError(f"{value} does not fit in {ARI_DIGITS} hexadecimal digits")
    return ari_parse(f"{value:08X}")


def ari_generate(*, avoid: Container[str] = (), randbits=secrets.randbits) -> str:
    """A new random class B ARI, different from those in ``avoid``.

    EIC, FPN and FPS are drawn at random (2**28 values): KWS Admin has no
    registry of installer codes, and two servers must simply never share one.
    Set ``system.ari`` instead when the installer assigns the ARI.
    """
    while True:
        ari = f"{(ARC_CLASS_B << 28) | randbits(_RANDOM_BITS):08X}"
        if ari not in avoid:
            return ari


# --- The system ARI and the ARI swap ---------------------------------------------

# Phases (redundancy.models.Phase values) in which a formed pair still exists.
# During a failover the backup serves the master's handsets, which are
# subscribed to the system ARI: dropping the swap then would cut them all off.
PAIR_FORMED_PHASES = frozenset({"normal", "peer_lost", "failover"})


@dataclass(frozen=True)
class SystemAri:
    """The ARI this server acts under (``system``, what its base stations broadcast), and why.

    ``subscribed`` is the system ARI the handsets are subscribed to (replicated, the
    same for the life of the system); ``problem`` is set when this server cannot act
    under it, naming what is missing.
    """

    own: str
    system: str
    swapped: bool
    reason: str
    subscribed: str = ""
    problem: str = ""


def system_ari_decide(
    *,
    own: str,
    subscribed: str,
    mode: str,
    swap_license: bool,
    phase: str,
    peer_mode: str,
    peer_ari: str,
) -> SystemAri:
    """The ARI a server acts under: the system ARI, under the ARI swap where it is not
    the server's own.

    ``subscribed`` is the replicated system ARI ('' where none is recorded yet: then a
    master or single server's own ARI is the system ARI, and a backup takes the one its
    master tells). A server whose own ARI is the system ARI needs no swap. Any other
    server acts under the system ARI only with the ARI swap license, which the backup
    redundancy license (14075260) contains: a backup once the pair has formed (``phase``
    normal, or peer lost / failover after it formed), a promoted backup as master at
    once. Without the swap it acts under its own ARI, and ``problem`` names the code.
    """

    def own_ari(reason: str, *, system: str = "", problem: str = "") -> SystemAri:
        return SystemAri(own=own, system=own, swapped=False, reason=reason,
                         subscribed=system or own, problem=problem)  # fmt: skip

    def swap(system: str, who: str) -> SystemAri:
        return SystemAri(
            own=own, system=system, swapped=True, subscribed=system,
            reason=f"ARI swap: this {who} acts under the system ARI {system}, to which the "
            "handsets are subscribed (the ARI swap of its backup redundancy license 14075260)",
        )  # fmt: skip

    no_swap = "no backup redundancy license (14075260) is installed, so there is no ARI swap"
    if mode == "slave":
        if phase not in PAIR_FORMED_PHASES:
            return own_ari(
                "the pair has not formed yet: the ARI swap starts when it joins the master"
            )
        if peer_mode and peer_mode != "master":
            return own_ari("the peer is not a master")
        try:
            system = ari_parse(subscribed or peer_ari)
        except AriError:
            return own_ari("the master has not told the system ARI yet")
        if system == own:
            return own_ari("this server's own ARI is the system ARI: no ARI swap is needed")
        if not swap_license:
            return own_ari(
                no_swap, system=system,
                problem=f"the handsets are subscribed to the system ARI {system}, and without "
                f"the ARI swap this backup cannot serve them: install the backup redundancy "
                f"license 14075260 for this server's ARI {own}",
            )  # fmt: skip
        return swap(system, "backup")
    if not subscribed or subscribed == own:
        return own_ari("this server's own ARI is the system ARI")
    if not swap_license:
        return own_ari(
            f"{no_swap}: this server acts under its own ARI {own}", system=subscribed,
            problem=f"the handsets are subscribed to the system ARI {subscribed}, but without "
            f"the ARI swap this server acts under its own ARI {own}, so they cannot reach it: "
            f"install the backup redundancy license 14075260 for ARI {own} (it contains the "
            f"ARI swap license), or change the system ARI and re-subscribe every handset",
        )  # fmt: skip
    return swap(subscribed, "master" if mode == "master" else "server")
