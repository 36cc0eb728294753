"""How administrator passwords are stored: Argon2id with OWASP's recommended parameters.

Django's default (PBKDF2, 1,000,000 rounds) takes about 0.6 s per check on a small
server, for every GUI login and every XML-RPC ``session_login``: an application that
reconnects to the backup after a failover waited that long, and fifty reconnecting at
once took 25 s. Argon2id (memory-hard, the password hashing competition's winner) with
m = 19 MiB, t = 2, p = 1 checks in tens of milliseconds and is stronger against GPU
guessing; 19 MiB a check keeps concurrent logins cheap in memory. Existing PBKDF2
hashes still verify and are re-hashed at the next login.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
