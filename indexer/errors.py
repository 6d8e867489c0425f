"""The one exception root of the indexer package, and the two kinds of trouble under it.

Every error the package raises on purpose derives from `IndexerError`; anything else is a bug and keeps
its traceback. The CLI answers an `InputError` with exit code 2 (the user can fix the input) and any
other `IndexerError` with exit code 1 (the indexer stopped to stay correct, or the node failed)::

    IndexerError                     root; the message says what is wrong and what to do
     ├─ InputError                   bad input: config, flags, files (also a ValueError)
     │   ├─ ConfigError              indexer/config.py: a chain, contract, token or label entry
     │   ├─ CatalogError             indexer/catalog.py: a labels file or label
     │   ├─ RecordingError           indexer/replay.py: a recording file
     │   ├─ ReconcileError           indexer/lending/reconcile.py: a comparison that cannot run as asked
     │   └─ PositionsError           indexer/lending/positions.py: data that cannot answer the question
     ├─ DecodeError                  indexer/decode.py: a log that does not match its ABI (quarantined)
     ├─ ChainError                   indexer/chain.py: the JSON-RPC client
     │   ├─ RpcTransportError
     │   ├─ RpcResponseError
     │   └─ RangeRefusedError
     └─ HaltError                    indexer/sync.py: going on could corrupt data
         ├─ DeepReorgError           a fork below the stored window of block hashes
         └─ SourceBusyError          another process writes this source's cursor
"""

from __future__ import annotations


class IndexerError(Exception):
    """Root of every error the indexer package raises on purpose."""

    exit_code = 1


class InputError(IndexerError, ValueError):
    """Input the user can fix: the message names the field, the value and the expected form."""

    exit_code = 2
