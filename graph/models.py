"""The model factory: `init_chat_model("provider:model")`, or a scripted model chosen explicitly.

With no model configured it raises ModelNotConfiguredError saying how to configure one; it never falls back to
the scripted model silently.
"""

from __future__ import annotations

from functools import lru_cache

from langchain_core.language_models import BaseChatModel

from graph.scripted import DemoChatModel, registered_scripted

HOW_TO_CONFIGURE = (
    "Set SEA_MODEL=openai:gpt-4.1-mini (with OPENAI_API_KEY), or pass --model provider:model "
    "(anthropic:..., ollama:..., or openai:... with SEA_MODEL_BASE_URL for an OpenAI-compatible server); "
    "--model scripted:demo runs the labelled offline demo."
)


class ModelNotConfiguredError(RuntimeError):
    """No usable chat model is configured; the message says how to configure one."""


def get_chat_model(model: str | None, *, base_url: str | None = None, temperature: float = 0.0) -> BaseChatModel:
    """The chat model for `model` ("provider:model", "scripted:demo" or a registered "scripted:<name>")."""
    if not model or not model.strip():
        raise ModelNotConfiguredError(f"No chat model is configured. {HOW_TO_CONFIGURE}")
    model = model.strip()
    provider, _, name = model.partition(":")
    if not name:
        raise ModelNotConfiguredError(f"Model {model!r} is not of the form provider:model. {HOW_TO_CONFIGURE}")
    if provider == "scripted":
        if name == "demo":
            return _demo_model()
        scripted = registered_scripted(name)
        if scripted is None:
            raise ModelNotConfiguredError(
                f"No scripted model named {name!r} is registered; scripted:demo is the offline demo."
            )
        return scripted
    return _provider_model(model, base_url, temperature)


@lru_cache(maxsize=1)
def _demo_model() -> DemoChatModel:
    return DemoChatModel()


@lru_cache(maxsize=8)
def _provider_model(model: str, base_url: str | None, temperature: float) -> BaseChatModel:
    from langchain.chat_models import init_chat_model  # heavy import, only when a real model is used

    kwargs: dict[str, object] = {"temperature": temperature}
    if base_url:
        kwargs["base_url"] = base_url
        if model.partition(":")[0] == "openai":
            # langchain-openai turns streamed token usage off for a custom base URL (not every compatible server
            # supports it); runs stream in the CLI and the app, so without this their tokens would read 0.
            kwargs["stream_usage"] = True
    try:
        return init_chat_model(model, **kwargs)
    except ImportError as exc:
        provider = model.partition(":")[0]
        raise ModelNotConfiguredError(
            f"The package for provider {provider!r} is not installed (pip install langchain-{provider}): {exc}"
        ) from exc
    except Exception as exc:  # provider clients raise their own types for missing keys and bad names
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise ModelNotConfiguredError(f"Model {model!r} could not be set up: {first_line}. {HOW_TO_CONFIGURE}") from exc
