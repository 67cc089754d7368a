"""One settings object for the whole project, read from the environment and `.env`.

Every variable is prefixed `SEA_` and documented in the README with its default. Precedence: an explicit
value passed in code, then the environment, then `.env`, then the default below.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Project settings. Runtime data all lives under `home` (SEA_HOME)."""

    model_config = SettingsConfigDict(env_prefix="SEA_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".sea"), description="Data directory: tools, index, checkpoints, caches.")

    # Models
    model: str | None = Field(
        default=None,
        description="Chat model as provider:model for init_chat_model, e.g. openai:gpt-4.1-mini, "
        "anthropic:claude-sonnet-4-5, ollama:llama3.1, or scripted:demo for the offline demo.",
    )
    model_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server.")
    model_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    structured_output_retries: int = Field(default=2, ge=0, le=10, description="Re-asks on malformed output.")
    api_retries: int = Field(default=4, ge=1, le=10, description="Attempts on 429/5xx/timeouts.")

    # Tool library and retrieval
    embeddings: str = Field(
        default="minilm",
        description="minilm (offline all-MiniLM-L6-v2 on ONNX Runtime) or openai:<model>.",
    )
    chroma_host: str | None = Field(default=None, description="Chroma server host; unset = embedded client.")
    chroma_port: int = Field(default=8000)
    retrieve_k: int = Field(default=5, ge=1, le=50)
    max_request_chars: int = Field(
        default=20_000, ge=100, le=1_000_000,
        description="Longest request (chat message, CLI ask, library search) accepted, in characters.",
    )
    duplicate_similarity: float = Field(
        default=0.9, ge=0.0, le=1.0,
        description="Description cosine at or above which a new tool with an existing tool's signature is a twin.",
    )

    # Sandbox
    sandbox_image: str = Field(default="sea-sandbox:latest")
    sandbox_pool_size: int = Field(default=2, ge=0, le=32, description="Warm containers kept ready; 0 = none.")
    sandbox_timeout_s: float = Field(default=20.0, gt=0, le=600, description="Wall clock per sandbox job.")
    sandbox_memory_mb: int = Field(default=256, ge=32, le=8192)
    sandbox_cpus: float = Field(default=1.0, gt=0, le=8)
    sandbox_pids: int = Field(default=64, ge=8, le=4096)
    sandbox_output_bytes: int = Field(default=64 * 1024, ge=1024, description="Cap on captured stdout/stderr.")
    sandbox_result_bytes: int = Field(default=256 * 1024, ge=1024, description="Cap on a call's JSON result.")
    sandbox_scratch_mb: int = Field(default=64, ge=8, le=4096, description="Size of /sandbox and /tmp tmpfs.")
    sandbox_nofile: int = Field(default=256, ge=32, le=65536, description="Open-file ulimit in the sandbox.")
    sandbox_max_jobs: int = Field(
        default=4, ge=1, le=256,
        description="Sandbox jobs (containers running code) at once per process; further jobs queue.",
    )
    sandbox_acquire_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="How long a job waits for a warm container."
    )
    sandbox_build: Literal["auto", "online", "offline"] = Field(
        default="auto",
        description="How build-image makes the image: auto (pull python slim if a registry answers, else "
        "debootstrap), online, or offline.",
    )
    sandbox_debian_mirror: str = Field(
        default="http://deb.debian.org/debian", description="Debian mirror for the offline image build."
    )

    # Graph
    max_repairs: int = Field(default=3, ge=0, le=10, description="Implementation repair attempts.")
    max_test_revisions: int = Field(default=2, ge=0, le=10, description="Recorded test revisions per run.")
    max_clarifications: int = Field(
        default=2, ge=0, le=10, description="Questions a turn may ask (clarify) before it says what is still missing."
    )
    max_test_rewrites: int = Field(
        default=2, ge=0, le=10, description="Times the red phase may send the tests back to write_tests."
    )
    checkpointer: Literal["sqlite", "postgres", "memory"] = Field(default="sqlite")
    postgres_uri: str | None = Field(default=None, description="PostgreSQL URI when checkpointer=postgres.")

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Derived paths: one place decides the data directory's layout.
    @property
    def tools_dir(self) -> Path:
        return self.home / "tools"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def checkpoints_path(self) -> Path:
        return self.home / "checkpoints.sqlite"

    @property
    def build_dir(self) -> Path:
        return self.home / "build"

    def ensure_home(self) -> Path:
        """Create the data directory if needed and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call `get_settings.cache_clear()` after changing the env)."""
    return Settings()
