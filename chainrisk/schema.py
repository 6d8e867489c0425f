"""Every package's tables, for Alembic: one MetaData per package, listed here."""

from __future__ import annotations

import sqlalchemy as sa


def all_metadata() -> list[sa.MetaData]:
    from analytics.tables import metadata as analytics_metadata
    from chainrisk.alerts.tables import metadata as alerts_metadata
    from chainrisk.contagion.surrogate_store import metadata as surrogate_metadata
    from chainrisk.contagion.tables import metadata as contagion_metadata
    from chainrisk.reports.tables import metadata as reports_metadata
    from chainrisk.tables import metadata as chainrisk_metadata
    from indexer.tables import metadata as indexer_metadata

    return [
        indexer_metadata,
        analytics_metadata,
        chainrisk_metadata,
        contagion_metadata,
        alerts_metadata,
        reports_metadata,
        surrogate_metadata,
    ]
