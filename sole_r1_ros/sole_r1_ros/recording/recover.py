"""Read what a killed recorder left: MCAP files scanned record by record, without metadata.

A rosbag2 writer writes ``metadata.yaml`` and the MCAP summary only when it closes, so a bag
whose writer was killed has neither, and a file cut mid-record ends in a torn record. rosbags
refuses such bags; this scanner walks the records from the start (schemas, channels, messages,
chunks), keeps every complete message, skips a chunk damaged inside (its length still frames
it: the chunks after it are read) and stops at the first record whose framing is damaged,
saying where. A length read from damaged bytes is checked against what is left of the file
before anything is read: such a length had raised MemoryError or OverflowError, and nothing
of the bag was given back.
"""
from dataclasses import dataclass, field
import io
from pathlib import Path
import struct
from typing import Callable, Iterator

_MAGIC = b'\x89MCAP0\r\n'
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END = 0x03, 0x04, 0x05, 0x06, 0x0F


class _Torn(Exception):
    """A record ends before its declared length."""


@dataclass
class ScanResult:
    """What one MCAP file gave back."""

    path: Path
    messages: int = 0
    problem: str | None = None
    '''None when every record was read; else why and where reading stopped.'''
    unknown_channels: set[int] = field(default_factory=set)
    damaged_chunks: list[str] = field(default_factory=list)
    '''Where and why each chunk skipped was damaged inside.'''

    def describe(self) -> str:
        problems = ([f'{len(self.damaged_chunks)} chunk(s) damaged inside were skipped (the '
                     f'first {self.damaged_chunks[0]})'] if self.damaged_chunks else [])
        problems += [self.problem] if self.problem is not None else []
        if not problems:
            return f'{self.path.name}: all {self.messages} messages read'
        return f'{self.path.name}: {self.messages} messages recovered; ' + '; '.join(problems)


def _take(stream: io.BufferedIOBase, size: int) -> bytes:
    position = stream.tell()
    left = stream.seek(0, io.SEEK_END) - position
    stream.seek(position)
    if size > left:   # a damaged length: reading it whole would not fit in memory
        raise _Torn(f'needed {size} bytes, found {left}')
    data = stream.read(size)
    if len(data) != size:
        raise _Torn(f'needed {size} bytes, found {len(data)}')
    return data


def _string(stream: io.BufferedIOBase) -> str:
    (size,) = struct.unpack('<I', _take(stream, 4))
    return _take(stream, size).decode('utf-8', errors='replace')


def scan_mcap(path: Path, wanted: Callable[[str], bool], result: ScanResult
              ) -> Iterator[tuple[str, str, bytes]]:
    """Every complete message on a wanted topic, as (topic, msgtype, CDR bytes), in file order.

    A generator, so that a long bag's messages are not all held at once; ``result`` (for
    ``path``) says, once it is exhausted, how many were read and where reading stopped. Never
    raises for damage inside the file.

    Raises:
        ValueError: the file is not MCAP at all.
    """
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    with open(path, 'rb') as stream:
        if stream.read(8) != _MAGIC:
            raise ValueError(f'{path} is not an MCAP file (bad magic)')
        ended = []
        try:
            yield from _records(stream, schemas, channels, wanted, result, ended)
            if not ended:
                result.problem = ('the file ends without its closing records (the writer never '
                                  'closed it): what it still held in memory is lost')
        except (_Torn, struct.error, ValueError) as exc:
            result.problem = (f'the rest of the file (from byte {stream.tell()}) is damaged or '
                              f'cut off ({exc}) and was skipped')


def _records(stream, schemas, channels, wanted, result, ended: list
             ) -> Iterator[tuple[str, str, bytes]]:
    """Read records to the end of ``stream``; a data-end record appends to ``ended``."""
    while True:
        op = stream.read(1)
        if not op or op[0] == _DATA_END:
            if op:
                ended.append(True)
            return
        start = stream.tell() - 1
        (length,) = struct.unpack('<Q', _take(stream, 8))
        body = _take(stream, length)
        if op[0] == _CHUNK:
            try:
                yield from _chunk(body, schemas, channels, wanted, result)
            except (_Torn, struct.error, ValueError, RuntimeError, MemoryError) as exc:
                result.damaged_chunks.append(f'at byte {start}: {type(exc).__name__}: {exc}')
        elif op[0] in (_SCHEMA, _CHANNEL, _MESSAGE):
            message = _record(op[0], io.BytesIO(body), schemas, channels, wanted, result)
            if message is not None:
                yield message


def _chunk(body: bytes, schemas, channels, wanted, result
           ) -> Iterator[tuple[str, str, bytes]]:
    """The messages of one chunk record's body (raises on damage inside it)."""
    record = io.BytesIO(body)
    _take(record, 28)  # start and end time, uncompressed size, CRC
    compression = _string(record)
    (size,) = struct.unpack('<Q', _take(record, 8))
    if compression not in ('', 'zstd', 'lz4'):
        raise ValueError(f'unsupported chunk compression {compression!r}')
    data = _take(record, size)
    if compression:
        from rosbags.rosbag2.storage_mcap import DECOMPRESSORS
        try:
            data = DECOMPRESSORS[compression](data, 0)
        except Exception as exc:  # noqa: BLE001 (zstd and lz4 raise their own kinds)
            raise ValueError(f'{compression} data does not decompress: {exc}') from exc
    yield from _records(io.BytesIO(data), schemas, channels, wanted, result, [])


def _record(op, record, schemas, channels, wanted, result) -> tuple[str, str, bytes] | None:
    (key,) = struct.unpack('<H', _take(record, 2))
    if op == _SCHEMA:
        schemas[key] = _string(record)
    elif op == _CHANNEL:
        (schema,) = struct.unpack('<H', _take(record, 2))
        channels[key] = (_string(record), schemas.get(schema, ''))
    elif key not in channels:
        result.unknown_channels.add(key)
    else:
        topic, msgtype = channels[key]
        _take(record, 20)  # sequence, log time, publish time
        if wanted(topic):
            result.messages += 1
            return topic, msgtype, record.read()
    return None


def bag_files(path: Path) -> Iterator[Path]:
    """The MCAP files of a bag folder (or the file itself)."""
    if path.is_file():
        yield path
    else:
        yield from sorted(path.glob('*.mcap'))
