"""The provider registry: name → client factory, status check and model list.

Interface::

    provider_names()                                  # ["ollama", "groq"]
    provider_client(name="groq", user=user)           # a ready client; Groq's key is resolved
                                                      # (raises keys.ApiKeyMissing when none)
    provider_status(name="ollama", user=user)         # ProviderStatus(name, reachable, version,
                                                      #   key_set, error); never raises
    providers_status(user=user)                       # every provider, probed concurrently
    provider_models(name="groq", user=user)           # as the provider lists them;
                                                      # raises IntegrationError

Status checks use short timeouts and no retries: they answer a person looking at a page. The
``error`` of a status says the cause and the fix, and never contains a key.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from django.conf import settings

from canvas.core.exceptions import NotFoundError

from . import keys
from .adapter import ApiAdapter
from .errors import AuthError, IntegrationError
from .groq import GroqClient
from .groq import unreachable_hint as groq_unreachable_hint
from .ollama import OllamaClient

STATUS_CONNECT_TIMEOUT = 2.0
STATUS_READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    label: str
    needs_key: bool
    base_url: Callable[[], str]


PROVIDERS: dict[str, ProviderSpec] = {
    "ollama": ProviderSpec("ollama", "Ollama", False, lambda: settings.OLLAMA_BASE_URL),
    "groq": ProviderSpec("groq", "Groq", True, lambda: settings.GROQ_BASE_URL),
}


@dataclass
class ProviderStatus:
    name: str
    reachable: bool
    version: str | None
    key_set: bool | None  # None: the provider takes no key
    error: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def provider_names() -> list[str]:
    return list(PROVIDERS)


def _spec(name: str) -> ProviderSpec:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise NotFoundError(
            f"Unknown provider {name!r}: choose one of {', '.join(PROVIDERS)}."
        ) from None


def provider_client(*, name: str, user=None, api_key: str | None = None, **adapter_options):
    """A client for ``name``; Groq's key is ``api_key`` or the user's resolved key."""
    _spec(name)
    if name == "ollama":
        return OllamaClient(**adapter_options)
    if api_key is None:
        api_key = keys.key_resolve(user=user, provider=name)
    return GroqClient(api_key=api_key, **adapter_options)


def _quick() -> dict:
    return {
        "connect_timeout": STATUS_CONNECT_TIMEOUT,
        "read_timeout": STATUS_READ_TIMEOUT,
        "max_retries": 0,
    }


def _probe_ollama() -> ProviderStatus:
    client = OllamaClient(**_quick())
    try:
        version = client.version()
    except IntegrationError as exc:
        return ProviderStatus("ollama", False, None, None, exc.message)
    finally:
        client.close()
    return ProviderStatus("ollama", True, version, None, None)


def _probe_groq(api_key: str | None) -> ProviderStatus:
    base_url = settings.GROQ_BASE_URL
    if api_key is None:
        # Without a key, a 401 from /models still proves Groq answers.
        adapter = ApiAdapter(
            provider="groq",
            base_url=base_url,
            unreachable_hint=groq_unreachable_hint(base_url),
            **_quick(),
        )
        try:
            adapter.request("GET", "models")
        except AuthError:
            pass
        except IntegrationError as exc:
            return ProviderStatus("groq", False, None, False, exc.message)
        finally:
            adapter.close()
        return ProviderStatus(
            "groq",
            True,
            None,
            False,
            "no Groq API key: add one with POST /api/keys/ or `manage.py set_api_key`, "
            "or set GROQ_API_KEY for the whole deployment",
        )
    client = GroqClient(api_key=api_key, **_quick())
    try:
        client.models()
    except AuthError as exc:
        return ProviderStatus(
            "groq",
            True,
            None,
            True,
            f"Groq rejected the key ({exc.message}): store a valid one "
            "(PATCH /api/keys/<id>/ with a new secret)",
        )
    except IntegrationError as exc:
        return ProviderStatus("groq", False, None, True, exc.message)
    finally:
        client.close()
    return ProviderStatus("groq", True, None, True, None)


def provider_status(*, name: str, user=None) -> ProviderStatus:
    return providers_status(user=user, names=[name])[0]


def providers_status(*, user=None, names: list[str] | None = None) -> list[ProviderStatus]:
    """Every provider's status; the network probes run concurrently, the DB reads here."""
    names = names or provider_names()
    for name in names:
        _spec(name)
    groq_key = None
    groq_key_error = None
    if "groq" in names and keys.key_is_set(user=user, provider="groq"):
        # Resolved in this thread: database access stays on the request's connection.
        try:
            groq_key = keys.key_resolve(user=user, provider="groq")
        except keys.ApiKeyUnreadable as exc:
            groq_key_error = exc.message

    def probe_groq() -> ProviderStatus:
        if groq_key_error is None:
            return _probe_groq(groq_key)
        # Whether Groq answers, and why your key cannot be used.
        status = _probe_groq(None)
        return ProviderStatus("groq", status.reachable, None, True, groq_key_error)

    probes = {"ollama": _probe_ollama, "groq": probe_groq}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = [pool.submit(probes[name]) for name in names]
        return [future.result() for future in futures]


def provider_models(*, name: str, user=None) -> list[dict]:
    """Ollama's local tags, or Groq's models (each marked ``chat``) with the user's key."""
    _spec(name)
    client = provider_client(name=name, user=user, max_retries=0)
    try:
        return client.tags() if name == "ollama" else client.models()
    finally:
        client.close()
