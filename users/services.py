"""Writes of the users app.

Every write is one transaction together with its change-log entry (so it
reaches the backup) and its event-log entry. A backup or a locked node refuses
with ``core.locks.Locked``; bad input raises ``ValidationError`` naming
the field and the rule, and writes nothing.

The NODE column says which server handles each user: chosen when the user is
created, split 50/50 at random when the pair forms (``users_rebalance``), and
all of them moved to the survivor on a takeover (``users_take_over``).
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.changelog import changelog_append
from core.models import NodeState, Phase
from core.selectors import config_read, peer_name
from core.services import event_record
from licensing.selectors import user_limit_message
from users import ipei
from users.models import DectUser, Node
from users.replication import dect_user_data, dect_user_record, user_assignment_record
from users.selectors import LETTER

_FIRST = ["Anna", "Bo", "Carla", "Dev", "Emil", "Freja", "Gustav", "Hana", "Ida", "Jonas"]
_LAST = ["Berg", "Holm", "Jensen", "Kaur", "Lund", "Madsen", "Nielsen", "Ortiz", "Park", "Quist"]
_WARDS = ["ICU", "Ward 3", "Ward 4", "ER", "Pharmacy", "Porters", "Lab", "Radiology"]

EDITABLE = (
    "extension", "display_name", "ipei", "access_code", "sip_username", "sip_password",
    "subscription", "node",
)  # fmt: skip
_EXTENSION = re.compile(r"^\d{1,32}$")
_ACCESS_CODE = re.compile(r"^\d{0,8}$")


def _fields_check(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"not a field of a DECT user: {', '.join(sorted(unknown))}")


def _normalized(user: DectUser) -> dict[str, str]:
    """Canonicalize the user's values in place; return the errors by field."""
    errors: dict[str, str] = {}
    user.extension = str(user.extension or "").strip()
    if not _EXTENSION.match(user.extension):
        errors["extension"] = f"{user.extension!r} is not an extension: use 1 to 32 digits"
    raw_ipei = str(user.ipei or "").strip()
    if raw_ipei:
        try:
            user.ipei = ipei.normalize(raw_ipei)
        except ValueError as exc:
            errors["ipei"] = str(exc)
    else:
        user.ipei = None
    user.access_code = str(user.access_code or "").strip()
    if not _ACCESS_CODE.match(user.access_code):
        errors["access_code"] = "the access code is up to 8 digits"
    if user.subscription not in DectUser.Subscription.values:
        allowed = ", ".join(DectUser.Subscription.values)
        errors["subscription"] = f"{user.subscription!r} is not one of {allowed}"
    if user.node not in Node.values:
        errors["node"] = f"{user.node!r} is not a NODE; use M or S"
    return errors


def _uniqueness_errors(user: DectUser) -> dict[str, str]:
    errors: dict[str, str] = {}
    others = DectUser.objects.exclude(pk=user.pk) if user.pk else DectUser.objects.all()
    taken = others.filter(extension=user.extension).first()
    if taken:
        errors["extension"] = f"extension {user.extension} is already used by {taken}"
    if user.ipei:
        taken = others.filter(ipei=user.ipei).first()
        if taken:
            errors["ipei"] = f"IPEI {ipei.display(user.ipei)} is already used by {taken}"
    return errors


def dect_user_validate(user: DectUser) -> None:
    """Normalize and check a user (format, lengths, uniqueness); raise ValidationError."""
    errors = _normalized(user)
    if not errors:
        errors.update(_uniqueness_errors(user))
    if not errors:
        try:
            user.full_clean(validate_unique=False)
        except ValidationError as exc:
            errors.update({name: " ".join(msgs) for name, msgs in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)


def _save(user: DectUser) -> None:
    # The checks above race with a concurrent save; the unique index has the last word.
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationError(
            "the extension or IPEI was just taken by another user; try again"
        ) from None


def _user_limit_check(*, adding: int) -> None:
    """Refuse users beyond the licensed user count (none installed: no limit)."""
    message = user_limit_message(users_after=DectUser.objects.count() + adding)
    if message:
        raise ValidationError(message)


def dect_user_create(*, actor: str, **fields: Any) -> DectUser:
    """Create a DECT user from EDITABLE fields; return it.

    Raises ValidationError (nothing written) or Locked (not the master / locked).
    """
    _fields_check(fields)
    user = DectUser(**fields)
    with transaction.atomic():
        if "node" not in fields:
            user.node = node_for_new_user()
        dect_user_validate(user)
        _user_limit_check(adding=1)
        _save(user)
        dect_user_record(user)
        event_record(kind="user", message=f"User {user} created.", actor=actor)
    return user


def dect_user_update(*, user: DectUser, actor: str, **fields: Any) -> DectUser:
    """Change EDITABLE fields of a user; return it. Same errors as dect_user_create;
    on an error the instance is reloaded, so it never shows unsaved values."""
    _fields_check(fields)
    try:
        with transaction.atomic():
            before = dect_user_data(user)
            for name, value in fields.items():
                setattr(user, name, value)
            dect_user_validate(user)
            after = dect_user_data(user)
            changed = [name for name, value in after.items() if before[name] != value]
            if not changed:
                return user
            _save(user)
            dect_user_record(user)
            shown = ", ".join("SIP password" if n == "sip_password" else n for n in changed)
            event_record(kind="user", message=f"User {user} changed: {shown}.", actor=actor)
    except Exception:
        user.refresh_from_db()
        raise
    return user


def dect_user_delete(*, user: DectUser, actor: str) -> None:
    """Delete a user. Raises Locked if this node may not change users."""
    with transaction.atomic():
        key, name = str(user.pk), str(user)
        user.delete()
        changelog_append(entity="user", op="delete", key=key, data={})
        event_record(kind="user", message=f"User {name} deleted.", actor=actor)


def dect_user_seed_demo(*, count: int, seed: int = 6000) -> int:
    """Create ``count`` demo users (extensions 2000...) if the system has none; return how many.

    One transaction with a change-log entry per user. Raises Locked on a backup."""
    rng = random.Random(seed)
    users = []
    for n in range(count):
        extension = str(2000 + n)
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)} ({rng.choice(_WARDS)})"
        users.append(
            DectUser(
                extension=extension,
                display_name=name,
                ipei=ipei.make(3180, 400000 + n),
                access_code=f"{rng.randrange(10000):04d}",
                sip_username=extension,
                sip_password=f"pw-{rng.getrandbits(48):012x}",
                subscription=DectUser.Subscription.SUBSCRIBED,
            )
        )
    with transaction.atomic():
        if DectUser.objects.exists():
            return 0
        _user_limit_check(adding=len(users))
        DectUser.objects.bulk_create(users)
        for user in users:
            dect_user_record(user)
        event_record(kind="user", message=f"{len(users)} demo users created.", actor="kwsdemo")
    return len(users)


# --- NODE: which server handles each user ------------------------------------


def node_for_new_user() -> str:
    """The NODE of a user created now. While the pair is formed (a master in phase
    normal) at random, half each, so the split stays about 50/50 between rebalances;
    otherwise this server: a single server, or a master running without its backup."""
    values = config_read()
    if values["redundancy.mode"] == "master" and NodeState.load().phase == Phase.NORMAL:
        return random.SystemRandom().choice(("M", "S"))
    return "M"


def assign_all_to_self() -> int:
    """Mark every user as handled by this server (replicated when this is the master);
    return how many users that is."""
    mode = config_read()["redundancy.mode"]
    with transaction.atomic():
        DectUser.objects.exclude(node=LETTER[mode]).update(node=LETTER[mode])
        if mode == "master":
            user_assignment_record()
        return DectUser.objects.count()


def users_take_over(*, started_at: float) -> int:
    """Make this server handle every user of the lost peer; return how many moved.
    ``started_at`` (epoch) is when the takeover was decided, for the event."""
    mode = config_read()["redundancy.mode"]
    mine = LETTER[mode]
    with transaction.atomic():
        moved = DectUser.objects.exclude(node=mine).update(node=mine)
        if mode == "master":
            user_assignment_record()
    took = time.time() - started_at
    event_record(
        kind="failover_finished",
        message=f"Failover finished: {moved} users of {peer_name()} moved to "
        f"{settings.NODE_NAME} in {took:.2f} s",
    )
    return moved


def users_rebalance() -> tuple[int, int]:
    """Master: assign each user to master or backup at random, half each."""
    with transaction.atomic():
        ids = list(DectUser.objects.values_list("id", flat=True))
        random.SystemRandom().shuffle(ids)
        half = len(ids) // 2
        to_master, to_backup = ids[:half], ids[half:]
        DectUser.objects.filter(id__in=to_master).update(node="M")
        DectUser.objects.filter(id__in=to_backup).update(node="S")
        user_assignment_record(to_master=to_master, to_backup=to_backup)
        event_record(
            kind="rebalance",
            message=f"Rebalanced {len(ids)} users: {len(to_master)} to master "
            f"{settings.NODE_NAME}, "
            f"{len(to_backup)} to backup {peer_name()}",
        )
    return len(to_master), len(to_backup)
