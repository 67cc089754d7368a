"""The index's own costs at scale: exact in-memory dense search against Chroma's embedded vector query.

    python -m bench.index_scale [--tools 10000] [--json]

Builds an index of `--tools` synthetic tools (bench.retrieval.synthetic_tools) in a temporary folder with
seeded random unit vectors written straight to its SQLite file (no embedding: the build is not what is
measured), then measures: opening it, a refresh when nothing changed, a refresh after another index object
wrote one tool (what a process pays to catch up with another's write), the dense step alone (one matrix
product over 2 x tools vectors) and, on the same vectors, Chroma's embedded `query` (n_results 60, ids and
distances only: what the index used before), and whole searches with the real MiniLM query embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.retrieval import synthetic_tools
from tools_library.embeddings import MINILM_DIMENSIONS, MiniLMEmbeddings
from tools_library.retrieval import IndexEntry, ToolIndex

QUERIES = [
    "reverse the string 'hello world'", "how many vowels are in onomatopoeia", "convert 70 kg to pounds",
    "is 2024 a leap year", "median of 3, 1, 4, 1, 5", "days between 2024-01-01 and 2024-03-01",
]


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3), "n": len(ordered)}


def _timed(action: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _random_vectors(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, 2, MINILM_DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def run(tools: int, repeat: int = 60) -> dict[str, Any]:
    embeddings = MiniLMEmbeddings()
    entries = synthetic_tools(tools)
    vectors = _random_vectors(tools, seed=7)
    with tempfile.TemporaryDirectory(prefix="sea-bench-index-") as tmp:
        folder = Path(tmp) / "index"
        index = ToolIndex(embeddings=embeddings, persist_dir=folder)
        for start in range(0, tools, 2000):
            chunk = entries[start : start + 2000]
            index._backend.write(chunk, {e.name: vectors[start + i] for i, e in enumerate(chunk)})
        start = time.perf_counter()
        reopened = ToolIndex(embeddings=embeddings, persist_dir=folder)
        open_ms = (time.perf_counter() - start) * 1000
        unchanged = _timed(reopened.refresh, repeat)
        writer = ToolIndex(embeddings=embeddings, persist_dir=folder)
        caught_up = []
        for i in range(5):
            writer.upsert([IndexEntry(name=f"another_process_tool_{i}", version=1, signature="def f(x: int) -> int",
                                      description=f"A tool written by another process, number {i}.",
                                      content_hash=f"other-{i}")])
            caught_up += _timed(reopened.refresh, 1)
        query = np.asarray(embeddings.embed_query(QUERIES[0]), dtype=np.float32)
        matrix = reopened._matrix
        dense = _timed(lambda: np.argpartition(-(matrix @ query), 59)[:60], repeat)
        searches = []
        for i in range(repeat):
            searches += _timed(lambda i=i: reopened.search(QUERIES[i % len(QUERIES)], 5), 1)
        chroma = _chroma_query(Path(tmp) / "chroma", entries, vectors, query, repeat)
        sqlite_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    return {
        "tools": tools, "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
        "open_ms": round(open_ms, 1), "index_files_mb": round(sqlite_mb, 1),
        "refresh_unchanged": _ms(unchanged), "refresh_after_another_write": _ms(caught_up),
        "dense_step_exact": _ms(dense), "dense_step_chroma_embedded_query": chroma,
        "search_with_minilm": _ms(searches),
    }


def _chroma_query(path: Path, entries: list[IndexEntry], vectors: np.ndarray, query: np.ndarray,
                  repeat: int) -> dict[str, float]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("bench", configuration={"hnsw": {"space": "cosine"}})
    for start in range(0, len(entries), 2000):
        chunk = entries[start : start + 2000]
        collection.add(
            ids=[f"{e.name}::{kind}" for e in chunk for kind in ("card", "name")],
            embeddings=np.vstack([vectors[start + i] for i in range(len(chunk))]),
        )
    return _ms(_timed(lambda: collection.query(query_embeddings=[query], n_results=60, include=["distances"]),
                      repeat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.tools < 100:
        print("error: --tools must be at least 100", file=sys.stderr)
        return 2
    result = run(args.tools)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"index of {result['tools']} tools, {result['cpus']} CPUs, load average {result['load_average']}")
    print(f"  {'open':<34} {result['open_ms']:>10.1f} ms   (index files {result['index_files_mb']} MB)")
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"  {key:<34} p50 {value['p50_ms']:>9.3f} ms   p95 {value['p95_ms']:>9.3f} ms   n={value['n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
