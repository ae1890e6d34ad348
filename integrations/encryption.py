"""Encryption at rest of stored provider keys, keyed by CRYPTOGRAPHY_KEY alone.

django-cryptography's ``encrypt()`` field encrypts with a key stretched from
``CRYPTOGRAPHY_KEY`` but signs with ``FernetSigner()``, whose default MAC key is
``SECRET_KEY`` (``django_cryptography/core/signing.py``), read once when the model class is
built. Rotating ``SECRET_KEY`` would then make every stored secret fail its MAC. So the field
here keeps the library's storage plumbing and ``FernetBytes`` format but builds its box from
two sub-keys of ``CRYPTOGRAPHY_KEY`` (one to encrypt, one to sign), looked up at each use so
``override_settings`` and ``rotate_encryption_key`` can name any key.

Two facts about the library shape this module:

- Importing it replaces ``settings.CRYPTOGRAPHY_KEY`` with its PBKDF2-stretched 32 bytes
  (``django_cryptography/conf.py``, an ``AppConf`` that writes its configured values back into
  ``django.conf.settings``). ``master_key`` therefore accepts either the passphrase (a ``str``,
  as the environment, ``override_settings`` and the rotation command give it) or those bytes,
  and stretches a passphrase exactly as the library does, so both forms name the same key.
- Its field pickles the value before encrypting; this one stores UTF-8 text instead, so a row
  never reaches ``pickle.loads``.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django.utils.encoding import force_bytes
from django_cryptography.core.signing import BadSignature, FernetSigner
from django_cryptography.fields import get_encrypted_field
from django_cryptography.utils.crypto import FernetBytes, InvalidToken, pbkdf2

# The library's stretching parameters (django_cryptography/conf.py ``CryptographyConf``).
_PBKDF2_ITERATIONS = 30000
_KEY_LENGTH = 32

# Raised by ``SecretBox.decrypt`` (and so by reading a row) when the key is not the one the
# value was written with: the MAC does not match, or the padding is wrong.
DecryptionError = (BadSignature, InvalidToken)


def master_key(material: str | bytes) -> bytes:
    """The 32-byte key that ``material`` names.

    A ``str`` is a passphrase and is stretched with PBKDF2-SHA256 as django-cryptography does;
    ``bytes`` are taken to be that stretched key already (what the library leaves in
    ``settings.CRYPTOGRAPHY_KEY`` once imported).
    """
    if isinstance(material, bytes):
        return material
    if not material:
        raise ValueError("The encryption key is empty.")
    salt = force_bytes(getattr(settings, "CRYPTOGRAPHY_SALT", "django-cryptography"))
    return pbkdf2(material, salt, _PBKDF2_ITERATIONS, dklen=_KEY_LENGTH)


def _subkey(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_LENGTH, salt=None, info=purpose).derive(
        master
    )


@functools.lru_cache(maxsize=8)
def secret_box(material: str | bytes) -> FernetBytes:
    """An encrypt/decrypt box for ``material`` (a passphrase or a stretched key).

    AES-256-CBC with one sub-key, HMAC-SHA256 with another, in django-cryptography's
    ``FernetBytes`` format. Cached because stretching a passphrase costs tens of milliseconds.
    """
    master = master_key(material)
    return FernetBytes(
        key=_subkey(master, b"ai-canvas api keys: encryption"),
        signer=FernetSigner(key=_subkey(master, b"ai-canvas api keys: signature")),
    )


def configured_secret_box() -> FernetBytes:
    """The box for the configured ``CRYPTOGRAPHY_KEY`` (looked up now, not at import)."""
    return secret_box(settings.CRYPTOGRAPHY_KEY)


def encrypt_text(value: str, *, box: FernetBytes | None = None) -> bytes:
    return (box or configured_secret_box()).encrypt(value.encode())


def decrypt_text(token: bytes, *, box: FernetBytes | None = None) -> str:
    """Raises one of ``DecryptionError`` when ``token`` was not written with this box's key."""
    return (box or configured_secret_box()).decrypt(force_bytes(token)).decode()


# django-cryptography's encrypted TextField class (what ``encrypt(models.TextField())`` builds).
# Subclassing it (rather than mixing ``EncryptedMixin`` in again) keeps this class's own import
# path in migrations instead of ``encrypt(...)``, which would rebuild the library's default.
_LibraryEncryptedTextField = get_encrypted_field(models.TextField, True)


class EncryptedTextField(_LibraryEncryptedTextField):
    """A text column stored encrypted and signed with the configured ``CRYPTOGRAPHY_KEY``.

    The column is binary; the plaintext never reaches SQL. Only ``isnull`` lookups work.
    """

    def _dump(self, value: str) -> bytes:
        return encrypt_text(str(value))

    def _load(self, value: bytes) -> str:
        return decrypt_text(value)
