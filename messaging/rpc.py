"""The KWS XML-RPC API (SDK 1.6): its methods, their signatures and defaults, and the
checking of arguments, so that a call with a bad argument is a clear fault and sends
nothing. The methods themselves act on ``messaging.hub`` (``messaging.server`` wires
in what needs the database: logins and the users' extensions).
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from basestations.protocol import MAX_DISPLAY, extension_text

# Fault codes of this server (the SDK's status codes are return values, not faults).
FAULT_METHOD = 1  # no such method
FAULT_ARGUMENTS = 2  # wrong number or types of arguments
FAULT_REQUEST = 3  # not an XML-RPC request

STRING, INT, BOOLEAN, ARRAY, BASE64 = "string", "int", "boolean", "array", "base64"

SMS_ADVANCED_ACTIONS = {
    0x01: "new message", 0x02: "new alarm message", 0x03: "new alarm message (vendor sample)",
    0x10: "ask for status", 0x12: "delete message", 0x13: "LED only", 0x14: "icon only",
}  # fmt: skip
DESTINATION_TYPES = ("all", "group", "endpoint")


class ArgumentError(ValueError):
    """An argument that does not fit the method's signature; str() names it."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = ...  # ... = required


@dataclass(frozen=True)
class Method:
    name: str
    returns: str
    params: tuple[Param, ...]
    help: str
    run: Callable[..., Awaitable[Any]] | None = None

    def signature(self) -> list[str]:
        return [self.returns, *(p.type for p in self.params)]

    def bind(self, args: tuple) -> dict[str, Any]:
        """The arguments by name, defaults filled in, each checked; ArgumentError else."""
        if len(args) > len(self.params):
            raise ArgumentError(f"{self.name} takes at most {len(self.params)} arguments, "
                                f"{len(args)} given")  # fmt: skip
        bound: dict[str, Any] = {}
        for n, param in enumerate(self.params):
            if n < len(args):
                bound[param.name] = _coerce(param, args[n])
            elif param.default is ...:
                raise ArgumentError(f"{self.name}: argument {n + 1} ({param.name}) is missing")
            else:
                bound[param.name] = param.default
        return bound


def _coerce(param: Param, value: Any) -> Any:
    where = f"argument {param.name}"
    if param.type == INT:
        if param.name == "timeout" and isinstance(value, float):
            return int(value)  # some applications send the receive timeout as a double
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentError(f"{where} must be an int, not {type(value).__name__}")
        return value
    if param.type == BOOLEAN:
        if not isinstance(value, bool | int):
            raise ArgumentError(f"{where} must be a boolean")
        return bool(value)
    if param.type == STRING:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ArgumentError(f"{where} must be a string, not {type(value).__name__}")
        return str(value)  # the SDK's applications send extensions as integers too
    if param.type == BASE64:
        if isinstance(value, xmlrpc.client.Binary):
            return value.data
        if isinstance(value, bytes):
            return value
        if value == "":
            return b""
        raise ArgumentError(f"{where} must be base64")
    if param.type == ARRAY:
        if not isinstance(value, list):
            raise ArgumentError(f"{where} must be an array")
        return value
    return value


def display_check(text: str, name: str = "display") -> str:
    if len(text) > MAX_DISPLAY:
        raise ArgumentError(f"argument {name} has {len(text)} characters; at most {MAX_DISPLAY}")
    return text


def to_check(text: str) -> str:
    try:
        return extension_text(text)
    except ValueError as exc:
        raise ArgumentError(f"argument {exc}") from None


def int_check(value: int, name: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ArgumentError(f"argument {name} must be {low} to {high}, not {value}")
    return value


# --- The methods (their ``run`` is set by messaging.server) ----------------------------

P = Param
SESSION = P("session", INT)
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("session_login", INT, (P("user", STRING), P("password", STRING)),
               "Log in as GW-DECT/<account> (or <account>): a session id > 0, or -4 (login "
               "incorrect)."),
        Method("session_logout", BOOLEAN, (SESSION,), "End the session."),
        Method("session_receive", ARRAY, (SESSION, P("timeout", INT, 0)),
               "The session's events (structs with a 'type'), waiting up to timeout seconds "
               "for the first; -1 unknown session, -3 while another receive waits."),
        Method("endpoint_sms", INT,
               (SESSION, P("to", STRING), P("callback", STRING), P("display", STRING),
                P("alerting", INT, 1)),
               "A text message (display up to 72 characters) to the handset of extension "
               "'to'; its outcome arrives as endpoint_release."),
        Method("endpoint_sms_advanced", INT,
               (SESSION, P("action", INT), P("response", INT), P("id", INT, 0),
                P("repeat", INT, 3), P("type", STRING, "all"), P("to", STRING, ""),
                P("led", INT, 0), P("icon", INT, 0), P("color", INT, 0), P("setup", INT, 0),
                P("alerttone", INT, 0), P("alertpattern", INT, 0), P("alertvolume", INT, 0),
                P("alerttimeout", INT, 0), P("displaytimeout", INT, 0),
                P("display", STRING, ""), P("callback", STRING, "")),
               "A message or alarm with answers (action 0x01 message, 0x02/0x03 alarm, 0x10 "
               "status, 0x12 delete, 0x13 LED, 0x14 icon; response: the answers allowed); "
               "answers arrive as endpoint_sms_advanced events."),
        Method("endpoint_broadcast", INT,
               (SESSION, P("display", STRING), P("repeat", INT, 3), P("type", STRING, "all"),
                P("to", STRING, ""), P("proprietary_discriminator", INT, 0x82),
                P("data", BASE64, b"")),
               "A broadcast to all handsets, a group (to: extensions separated by commas) or "
               "one endpoint; its outcome arrives as endpoint_broadcast."),
        Method("endpoint_base_stations", INT, (SESSION, P("to", STRING)),
               "Ask the handset which base stations it hears: endpoint_base_stations event "
               "with rfp_map (rpn, rssi), the current one first."),
        Method("endpoint_call_setup", INT,
               (SESSION, P("to", STRING), P("callback", STRING), P("display", STRING),
                P("setupspec1", INT, 0x81), P("setupspec2", INT, 0), P("setupspec3", INT, 0)),
               "A text call to the handset of 'to': the call id (> 0) or a negative status; "
               "endpoint_call_accept follows when the handset answers."),
        Method("endpoint_call_accept", INT, (SESSION, P("call", INT)),
               "Accept a call a handset set up (endpoint_call_setup event)."),
        Method("endpoint_call_display", INT, (SESSION, P("call", INT), P("display", STRING)),
               "Show a text on the handset during the call."),
        Method("endpoint_call_menu", INT, (SESSION, P("call", INT), P("items", ARRAY)),
               "Offer a menu (items numbered from 1): endpoint_call_menu event with the item."),
        Method("endpoint_call_prompt", INT,
               (SESSION, P("call", INT), P("display", STRING),
                P("mode", STRING, "alphanumeric"), P("min", INT, 0), P("max", INT, 72)),
               "Ask the handset's user to type: endpoint_call_prompt event with the text."),
        Method("endpoint_call_release", INT, (SESSION, P("call", INT), P("reason", INT, 0)),
               "End the call."),
        Method("endpoint_hardware_extension", INT,
               (SESSION, P("hardware", INT), P("action", INT), P("repeat", INT, 3),
                P("type", STRING, "all"), P("to", STRING, ""), P("data", BASE64, b"")),
               "Access a built-in hardware element (sensor) of a handset; answers and reports "
               "arrive as endpoint_hardware_extension (with hardware and element)."),
        Method("endpoint_status", INT,
               (SESSION, P("to", STRING), P("status", INT), P("data", BASE64, b"")),
               "Ask the handset for a status; handset status events (11 charger, 12 alarm "
               "button) arrive as endpoint_status."),
    )
}  # fmt: skip
INTROSPECTION = ("system.listMethods", "system.methodHelp", "system.methodSignature")


def introspect(name: str, args: tuple) -> Any:
    if name == "system.listMethods":
        return sorted([*METHODS, *INTROSPECTION])
    target = args[0] if args else None
    method = METHODS.get(target) if isinstance(target, str) else None
    if method is None:
        raise xmlrpc.client.Fault(FAULT_METHOD, f"no method {target!r}")
    if name == "system.methodHelp":
        return method.help
    return [method.signature()]


def parse_call(body: bytes) -> tuple[str, tuple]:
    """The method name and arguments of a request body; Fault(FAULT_REQUEST) if it is not
    an XML-RPC call."""
    try:
        args, name = xmlrpc.client.loads(body, use_builtin_types=False)
    except Exception as exc:  # expat and xmlrpc raise many kinds on garbage
        raise xmlrpc.client.Fault(FAULT_REQUEST, f"not an XML-RPC call: {exc}") from None
    if not name:
        raise xmlrpc.client.Fault(FAULT_REQUEST, "not an XML-RPC call: no methodName")
    return name, args


def answer(value: Any) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=False).encode()


def fault(exc: xmlrpc.client.Fault) -> bytes:
    return xmlrpc.client.dumps(exc, methodresponse=True).encode()
