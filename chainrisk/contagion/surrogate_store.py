"""Trained contagion surrogates in PostgreSQL: one row per model (kind, version, what it was trained on,
its held-out metrics) with its weights in the row.

Weights live in the row (``bytea``), not in a file under the CHAINRISK home: a model is well under a
megabyte, the row and its weights are written in one transaction (no row pointing at a missing file), and
any machine that reads the database can predict with it. The graph network is stored as its torch
``state_dict`` (read back with ``weights_only=True``); the tree model as a pickle, read back only when its
SHA-256 matches the one stored beside it. Migration 0019 creates the table.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import JSONB

from chainrisk.errors import ChainriskError

if TYPE_CHECKING:
    from graph.gnn.baselines import TreeModel

Conn = psycopg.Connection[tuple[object, ...]]
KINDS = ("gnn", "tree")

metadata = sa.MetaData()

contagion_surrogate_models = sa.Table(
    "contagion_surrogate_models",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("kind", sa.Text, nullable=False, comment="gnn (graph network) or tree (boosted trees)"),
    sa.Column("version", sa.Integer, nullable=False, comment="1, 2, … per kind, in the order trained"),
    sa.Column("seed", sa.BigInteger, nullable=False, comment="seed of the draws and of the training"),
    sa.Column("scenarios", sa.Integer, nullable=False, comment="scenarios per labelled set"),
    sa.Column(
        "data_range", JSONB, nullable=False, comment="snapshots, families and draws trained and held out"
    ),
    sa.Column("metrics", JSONB, nullable=False, comment="held-out AUPRC, VaR95 error, the comparison"),
    sa.Column("config", JSONB, nullable=False, comment="what rebuilds the model around its weights"),
    sa.Column("weights", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False, comment="hex SHA-256 of weights"),
    sa.CheckConstraint("kind IN ('gnn', 'tree')", name="ck_contagion_surrogate_models_kind"),
    sa.UniqueConstraint("kind", "version", name="uq_contagion_surrogate_models_kind_version"),
    comment="Trained contagion surrogates: version, data range, held-out metrics and weights.",
)


class SurrogateStoreError(ChainriskError, ValueError):
    """No trained model of the kind asked for, or stored weights that do not match their checksum."""


@dataclass(frozen=True)
class StoredModel:
    """A stored model's row."""

    id: int
    kind: str
    version: int
    seed: int
    scenarios: int
    data_range: dict[str, Any]
    metrics: dict[str, Any]
    config: dict[str, Any]
    weights: bytes


def save_model(
    conn: Conn,
    kind: str,
    *,
    seed: int,
    scenarios: int,
    data_range: dict[str, Any],
    metrics: dict[str, Any],
    config: dict[str, Any],
    weights: bytes,
) -> tuple[int, int]:
    """Store a model as the next version of its kind; returns (id, version)."""
    if kind not in KINDS:
        raise SurrogateStoreError(f"model kind {kind!r}: expected one of {', '.join(KINDS)}")
    with conn.transaction():
        conn.execute("LOCK TABLE contagion_surrogate_models IN SHARE ROW EXCLUSIVE MODE")
        row = conn.execute(
            "INSERT INTO contagion_surrogate_models"
            " (kind, version, seed, scenarios, data_range, metrics, config, weights, sha256)"
            " SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s, %s, %s"
            " FROM contagion_surrogate_models WHERE kind = %s RETURNING id, version",
            (kind, seed, scenarios, Jsonb(data_range), Jsonb(metrics), Jsonb(config), weights,
             hashlib.sha256(weights).hexdigest(), kind),
        ).fetchone()  # fmt: skip
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def load_model(conn: Conn, kind: str, version: int | None = None) -> StoredModel:
    """The latest model of a kind (or the given version), its checksum verified."""
    row = conn.execute(
        "SELECT id, kind, version, seed, scenarios, data_range, metrics, config, weights, sha256"
        " FROM contagion_surrogate_models WHERE kind = %s AND (%s::integer IS NULL OR version = %s)"
        " ORDER BY version DESC LIMIT 1",
        (kind, version, version),
    ).fetchone()
    if row is None:
        which = f"version {version} of " if version is not None else ""
        raise SurrogateStoreError(f"no {which}{kind} surrogate stored; run `chainrisk contagion train` first")
    weights = bytes(row[8])  # type: ignore[call-overload]
    if hashlib.sha256(weights).hexdigest() != row[9]:
        raise SurrogateStoreError(f"{kind} surrogate version {row[2]}: stored weights fail their checksum")
    return StoredModel(
        id=int(str(row[0])),
        kind=str(row[1]),
        version=int(str(row[2])),
        seed=int(str(row[3])),
        scenarios=int(str(row[4])),
        data_range=dict(row[5]),  # type: ignore[call-overload]
        metrics=dict(row[6]),  # type: ignore[call-overload]
        config=dict(row[7]),  # type: ignore[call-overload]
        weights=weights,
    )


def tree_from_weights(weights: bytes) -> TreeModel:
    """The tree model from ``chainrisk.contagion.surrogate.tree_weights``; the caller has checked the
    bytes' SHA-256 (:func:`load_model` does). Imports scikit-learn, not torch."""
    from graph.gnn.baselines import TreeModel

    model = pickle.loads(weights)  # checksummed bytes this package wrote
    if not isinstance(model, TreeModel):
        raise TypeError("stored tree weights do not hold a tree model")
    return model
