"""Shared by the benchmarks: keep one JSON file per benchmark, one entry per mode."""
import json
import os


def merge_result(path: str, key: str, result: dict) -> None:
    """Store ``result`` under ``key`` in the JSON file at ``path``, keeping the other entries."""
    results = {}
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as stream:
            results = json.load(stream)
    results[key] = result
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump(results, stream, indent=2)
