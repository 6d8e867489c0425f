"""Tracked tokens and address labels: what turns transfers into whale flows and exchange net flows.

Labels come from three places, and a more deliberate one wins: the seed file the project maintains
(`indexer/data/address_labels.csv`, every row with a public reference) < `[[labels]]` in chainrisk.toml <
`chainrisk labels add/import` by a user. Tokens come from `[[tokens]]` in chainrisk.toml only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from indexer.config import (
    LABEL_CATEGORIES,
    MAX_CHAIN_ID,
    ChainConfig,
    LabelConfig,
    TokenConfig,
    normalise_address,
)
from indexer.errors import InputError

SEED_FILE = Path(__file__).resolve().parent / "data" / "address_labels.csv"
CSV_COLUMNS = ("chain_id", "address", "label", "category")
_RANK = {"seed": 0, "config": 1, "user": 2}

Conn = psycopg.Connection[tuple[object, ...]]


class CatalogError(InputError):
    """A labels file or a label is malformed; the message names the line and the field."""


@dataclass(frozen=True)
class Label:
    chain_id: int
    address: str
    label: str
    category: str
    reference: str | None = None


def read_labels_csv(path: Path) -> list[Label]:
    """Every row of a labels CSV, or an error naming the first bad line (nothing is half-read)."""
    if path.is_dir():
        raise CatalogError(f"{path}: is a directory; expected a CSV file")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}; expected {CSV_COLUMNS}")
            labels = [(n, _row(path, n, row)) for n, row in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read it ({exc.strerror})") from None
    _no_repeats(path, labels)
    return [label for _, label in labels]


def _no_repeats(path: Path, labels: Sequence[tuple[int, Label]]) -> None:
    """One label per address and chain: with two, which one wins would depend on the row order."""
    first: dict[tuple[int, str], int] = {}
    for line, label in labels:
        seen = first.setdefault((label.chain_id, label.address), line)
        if seen != line:
            raise CatalogError(
                f"{path}, line {line}: address {label.address} on chain {label.chain_id} is already labelled"
                f" on line {seen}; keep one of the two rows"
            )


def _row(path: Path, line: int, row: Mapping[str, str | None]) -> Label:
    where = f"{path}, line {line}"
    chain = (row.get("chain_id") or "").strip()
    # The length check first: int() refuses strings of thousands of digits with its own error.
    if not chain.isdigit() or len(chain) > 16 or not 0 < int(chain) <= MAX_CHAIN_ID:
        raise CatalogError(f"{where}: chain_id must be an integer in 1..{MAX_CHAIN_ID}, got {chain!r}")
    return make_label(
        int(chain),
        row.get("address") or "",
        row.get("label") or "",
        row.get("category") or "",
        (row.get("reference") or "").strip() or None,
        where,
    )


def make_label(
    chain_id: int, address: str, label: str, category: str, reference: str | None = None, where: str = "label"
) -> Label:
    """A validated label; the error names what is wrong and what is expected."""
    checked = _address(address, where)
    name = label.strip()
    if not name or len(name) > 100:
        raise CatalogError(f"{where}: label must be 1 to 100 characters, got {label!r}")
    kind = category.strip().lower()
    if kind not in LABEL_CATEGORIES:
        raise CatalogError(f"{where}: category {category!r} is not one of {', '.join(LABEL_CATEGORIES)}")
    return Label(chain_id, checked, name, kind, reference)


def _address(address: str, where: str) -> str:
    try:
        return normalise_address(address.strip())
    except ValueError as exc:
        raise CatalogError(f"{where}: address: {exc}") from None


def upsert_labels(conn: Conn, labels: Sequence[Label], source: str) -> int:
    """Insert or update labels from `source`; an existing label from a more deliberate source is kept."""
    if source not in _RANK:
        raise CatalogError(f"source {source!r}: expected one of {', '.join(_RANK)}")
    rank = "CASE {} WHEN 'seed' THEN 0 WHEN 'config' THEN 1 ELSE 2 END"
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            f"""
            INSERT INTO address_labels (chain_id, address, label, category, source, reference)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (chain_id, address) DO UPDATE
               SET label = EXCLUDED.label, category = EXCLUDED.category, source = EXCLUDED.source,
                   reference = EXCLUDED.reference, updated_at = now()
             WHERE {rank.format("address_labels.source")} <= {rank.format("EXCLUDED.source")}
            """,
            [(lb.chain_id, lb.address, lb.label, lb.category, source, lb.reference) for lb in labels],
        )
    return len(labels)


def seed_labels(conn: Conn, path: Path = SEED_FILE) -> int:
    """Load the project's seed labels; users' and config edits stay as they are."""
    return upsert_labels(conn, read_labels_csv(path), "seed")


def remove_label(conn: Conn, chain_id: int, address: str) -> bool:
    """Delete a label; True if there was one."""
    with conn.transaction():
        cur = conn.execute(
            "DELETE FROM address_labels WHERE chain_id = %s AND address = %s",
            (chain_id, _address(address, "label")),
        )
    return cur.rowcount > 0


def list_labels(
    conn: Conn, chain_id: int | None = None, category: str | None = None
) -> list[tuple[object, ...]]:
    """``(chain_id, address, label, category, source, reference)`` ordered by chain, category, label."""
    return conn.execute(
        """
        SELECT chain_id, address, label, category, source, reference FROM address_labels
         WHERE (%(c)s::int IS NULL OR chain_id = %(c)s) AND (%(k)s::text IS NULL OR category = %(k)s)
         ORDER BY chain_id, category, label, address
        """,
        {"c": chain_id, "k": category},
    ).fetchall()


def chain_ids(chains: Iterable[ChainConfig]) -> dict[str, int]:
    return {c.name: c.chain_id for c in chains}


def sync_config(
    conn: Conn, chains: Iterable[ChainConfig], tokens: Sequence[TokenConfig], labels: Sequence[LabelConfig]
) -> None:
    """Make `tracked_tokens` and the config-sourced labels of the configured chains match the config."""
    ids = chain_ids(chains)
    unknown = sorted(
        {t.chain for t in tokens if t.chain not in ids} | {lb.chain for lb in labels if lb.chain not in ids}
    )
    if unknown:
        raise CatalogError(f"[[tokens]]/[[labels]] name chain(s) {unknown} not in [[chains]]: {sorted(ids)}")
    with conn.transaction():
        conn.execute("DELETE FROM tracked_tokens WHERE chain_id = ANY(%s)", (list(ids.values()),))
        conn.execute(
            "DELETE FROM address_labels WHERE source = 'config' AND chain_id = ANY(%s)", (list(ids.values()),)
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tracked_tokens VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        ids[t.chain],
                        t.address,
                        t.symbol,
                        t.decimals,
                        t.whale_threshold_usd,
                        t.price_feed,
                        t.price_decimals,
                    )
                    for t in tokens
                ],
            )
        upsert_labels(
            conn, [Label(ids[lb.chain], lb.address, lb.label, lb.category) for lb in labels], "config"
        )
