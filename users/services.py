"""Writes of the users app.

Every write is one transaction together with its change-log entry (so it
reaches the backup) and its event-log entry. A backup or a locked node refuses
with ``core.locks.Locked``; bad input raises ``ValidationError`` naming
the field and the rule, and writes nothing.

Which server handles a user follows from its home (``core.assignment``), chosen
at random once, when the user is created, so that the split stays within one
user of 50/50; a takeover or a return changes the pair's assignment, never a
user's home.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.assignment import home_for_new
from core.audit import audit_record
from core.changelog import changelog_append
from core.models import NodeState
from core.selectors import peer_name
from core.services import event_record
from licensing.selectors import user_limit_message
from users import ipei
from users.models import DectUser, Home
from users.replication import dect_user_data, dect_user_record
from users.selectors import home_counts

_FIRST = ["Anna", "Bo", "Carla", "Dev", "Emil", "Freja", "Gustav", "Hana", "Ida", "Jonas"]
_LAST = ["Berg", "Holm", "Jensen", "Kaur", "Lund", "Madsen", "Nielsen", "Ortiz", "Park", "Quist"]
_WARDS = ["ICU", "Ward 3", "Ward 4", "ER", "Pharmacy", "Porters", "Lab", "Radiology"]

EDITABLE = (
    "extension", "display_name", "ipei", "access_code", "sip_username", "sip_password",
    "subscription",
)  # fmt: skip
# Never stored in the audit trail, shown there as "changed".
SECRET_FIELDS = frozenset({"sip_password"})
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
    if user.home not in Home.values:
        errors["home"] = f"{user.home!r} is not a home slot; use A or B"
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
        user.home = home_for_new_user()
        dect_user_validate(user)
        _user_limit_check(adding=1)
        _save(user)
        dect_user_record(user)
        event_record(kind="user", message=f"User {user} created.", actor=actor)
        _audit(user, "created", None, dect_user_data(user), actor=actor)
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
            _audit(user, "changed", before, after, actor=actor)
    except Exception:
        user.refresh_from_db()
        raise
    return user


def subscriptions_reset(*, actor: str, **_: Any) -> int:
    """The system ARI changed: no handset is subscribed to the new one yet, so every
    subscribed user goes back to "subscription enabled" (replicated, each with its
    change-log entry) and must subscribe again. Returns how many."""
    users = list(DectUser.objects.filter(subscription=DectUser.Subscription.SUBSCRIBED))
    for user in users:
        user.subscription = DectUser.Subscription.ENABLED
        _save(user)
        dect_user_record(user)
    if users:
        event_record(
            kind="user",
            message=f"{len(users)} users back to subscription enabled: the system ARI changed, "
            "their handsets must subscribe again.",
            actor=actor,
        )
        audit_record(
            kind="user",
            action="subscriptions reset",
            summary=f"{len(users)} users back to subscription enabled (the system ARI changed).",
            actor=actor,
        )
    return len(users)


def _audit(
    user: DectUser, action: str, before: dict | None, after: dict | None, *, actor: str
) -> None:
    audit_record(
        kind="user",
        object_id=str(user.pk),
        object_repr=str(user),
        action=action,
        summary=f"User {user} {action}.",
        before=before,
        after=after,
        secret_fields=SECRET_FIELDS,
        actor=actor,
    )


def dect_user_delete(*, user: DectUser, actor: str) -> None:
    """Delete a user. Raises Locked if this node may not change users."""
    with transaction.atomic():
        key, name, before = str(user.pk), str(user), dect_user_data(user)
        _audit(user, "deleted", before, None, actor=actor)
        user.delete()
        changelog_append(entity="user", op="delete", key=key, data={})
        event_record(kind="user", message=f"User {name} deleted.", actor=actor)


def dect_user_seed_demo(*, count: int, seed: int = 6000) -> int:
    """Create ``count`` demo users (extensions 2000...) if the system has none; return how many.

    One transaction with a change-log entry per user. Raises Locked on a backup."""
    rng = random.Random(seed)
    # Half each, at random (the names are the same every time, the homes are not).
    homes = ["A", "B"] * (count // 2) + [home_for_new({}, random.SystemRandom().random())] * (
        count % 2
    )
    random.SystemRandom().shuffle(homes)
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
                home=homes[n],
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
        audit_record(
            kind="user",
            action="created",
            summary=f"{len(users)} demo users created (extensions 2000 on).",
            actor="kwsdemo",
        )
    return len(users)


# --- Homes: which server handles each user while both serve --------------------


def home_for_new_user() -> str:
    """The home of a user created now: the smaller half, a tie decided at random, so the
    split stays within one user of 50/50 and no other user ever moves."""
    return home_for_new(home_counts(), random.SystemRandom().random())


def users_takeover_report(*, started_at: float) -> int:
    """After this server took over every user of the lost peer (a new assignment), record
    how many users that moved to it; return the number."""
    slot = NodeState.load().slot
    moved = DectUser.objects.exclude(home=slot).count()
    took = time.time() - started_at
    event_record(
        kind="failover_finished",
        message=f"Failover finished: {moved} users of {peer_name()} moved to "
        f"{settings.NODE_NAME} in {took:.2f} s",
    )
    return moved
