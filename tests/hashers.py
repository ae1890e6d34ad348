"""A password hasher for the test process only: PBKDF2-SHA256 at one iteration.

Django's PBKDF2 runs 1,000,000 iterations (about 0.5 s of CPU here, several seconds on a busy
machine), and every test that makes a user with a password paid it: most of the suite's CPU
time. The algorithm name is Django's own and the iteration count is stored in each hash, so a
server or command in another process (real settings) still verifies these hashes (and upgrades
them on a successful log-in), and the test process verifies theirs.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
