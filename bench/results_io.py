"""Shared by the benchmarks: keep one JSON file per benchmark, one entry per mode."""
import json
import os
from pathlib import Path
import platform
import sys


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


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            return next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown'


def hardware(**extra) -> dict:
    """What a benchmark ran on: cores, CPU, machine, Python (plus ``extra``)."""
    return {'cpu_cores': os.cpu_count(), 'cpu_model': cpu_model(),
            'machine': platform.machine(), 'python': sys.version.split()[0], **extra}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (Linux), or 'n/a'."""
    try:
        return ' '.join(Path('/proc/loadavg').read_text().split()[:3])
    except OSError:
        return 'n/a'


def write_doc_and_table(out: Path, name: str, doc: dict, text: str) -> None:
    """Write ``out/name.json`` (the doc) and ``out/name.md`` (the table), and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{name}.json').write_text(json.dumps(doc, indent=1))
    (out / f'{name}.md').write_text(text)
    print(text)
    print(f"wrote {out / f'{name}.json'} and {out / f'{name}.md'}")
