"""Entry point of the ``postgres`` plugin: hook implementations only; the backend (and asyncpg)
is imported when a URL of these schemes is opened."""

from __future__ import annotations

from distsched import hookimpl

SCHEMES = ("postgresql", "postgres")


@hookimpl
def distsched_register_storage(registry):
    registry.add(
        "postgres",
        schemes=SCHEMES,
        factory=_open_storage,
        description="PostgreSQL storage: postgresql://[user:pass@]host:port/database?schema=NAME&pool_size=N "
                    "(needs the 'postgres' extra: pip install 'distsched[postgres]')",
    )


@hookimpl
def distsched_register_election(registry):
    registry.add(
        "postgres",
        schemes=SCHEMES,
        factory=_open_election,
        description="PostgreSQL lease row (term + 1 per acquisition, database clock) checked inside every "
                    "leader-write transaction",
    )


def _open_storage(url, *, options, reader=False):
    try:
        from .storage import PostgresStorage
    except ImportError as exc:  # the extra is not installed
        from distsched.model import ValidationError

        raise ValidationError("storage", f"postgresql:// needs the asyncpg driver ({exc}): "
                                         "pip install 'distsched[postgres]'") from None

    return PostgresStorage.open(url, options, reader=reader)  # a coroutine: connects in the engine's loop


def _open_election(url, *, storage, options):
    from .election import PostgresElection

    return PostgresElection.for_url(url, storage=storage, **options)


@hookimpl
def distsched_cli_commands():
    from .cli import db

    return [db]
