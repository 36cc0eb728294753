"""Writes of the users app."""

from __future__ import annotations

import random

from django.db import transaction

from users import ipei
from users.models import DectUser

_FIRST = ["Anna", "Bo", "Carla", "Dev", "Emil", "Freja", "Gustav", "Hana", "Ida", "Jonas"]
_LAST = ["Berg", "Holm", "Jensen", "Kaur", "Lund", "Madsen", "Nielsen", "Ortiz", "Park", "Quist"]
_WARDS = ["ICU", "Ward 3", "Ward 4", "ER", "Pharmacy", "Porters", "Lab", "Radiology"]


def dect_user_seed_demo(*, count: int, seed: int = 6000) -> int:
    """Create ``count`` demo users (extensions 2000...) if the system has none; return how many."""
    if DectUser.objects.exists():
        return 0
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
        DectUser.objects.bulk_create(users)
    return len(users)
