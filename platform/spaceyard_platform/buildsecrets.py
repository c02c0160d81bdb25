"""The build workers' :class:`~spaceyard_builder.api.SecretSource`: a Space's secrets, read from the
platform's database and decrypted with the platform's key at build time, so the queue carries only the
Space's id (``BuildRequest.secrets_ref``) and no secret value ever rests in the broker."""

from __future__ import annotations

from sqlalchemy import select

from spaceyard_builder.api import SecretSource
from spaceyard_builder.settings import BuilderSettings

from . import spacetokens
from .crypto import SecretBox, load_or_create_key
from .db.models import Space, SpaceSecret
from .db.session import Database
from .settings import Settings


class DatabaseSecretSource(SecretSource):
    def __init__(self, settings: BuilderSettings) -> None:
        super().__init__(settings)
        self.platform = Settings(data_dir=settings.data_dir)

    def secrets(self, ref: str) -> dict[str, str]:
        box = SecretBox(load_or_create_key(self.platform.secret_key, self.platform.data_dir, create=False))
        db = Database(self.platform.resolved_database_url)
        try:
            with db.session() as session:
                rows = session.scalars(select(SpaceSecret).where(SpaceSecret.space_pk == ref))
                return {row.key: box.decrypt(row.value_encrypted) for row in rows}
        finally:
            db.engine.dispose()

    def hub_token(self, space_id: str) -> str | None:
        owner, _, name = space_id.partition("/")
        db = Database(self.platform.resolved_database_url)
        try:
            with db.session() as session:
                space = session.scalar(select(Space).where(Space.owner == owner, Space.name == name))
                pk = space.id if space is not None else None
            return spacetokens.for_space(db, self.platform, pk) if pk else None
        finally:
            db.engine.dispose()
