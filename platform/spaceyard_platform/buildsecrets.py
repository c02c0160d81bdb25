"""The build workers' :class:`~spaceyard_builder.api.SecretSource`: a Space's secrets, read from the
platform's database and decrypted with the platform's key at build time, so the queue carries only the
Space's id (``BuildRequest.secrets_ref``) and no secret value ever rests in the broker."""

from __future__ import annotations

from sqlalchemy import select

from spaceyard_builder.api import SecretSource
from spaceyard_builder.settings import BuilderSettings

from .crypto import SecretBox, load_or_create_key
from .db.models import SpaceSecret
from .db.session import Database
from .settings import Settings


class DatabaseSecretSource(SecretSource):
    def __init__(self, settings: BuilderSettings) -> None:
        super().__init__(settings)
        platform = Settings(data_dir=settings.data_dir)
        self.database_url = platform.resolved_database_url
        self.box = SecretBox(load_or_create_key(platform.secret_key, platform.data_dir, create=False))

    def secrets(self, ref: str) -> dict[str, str]:
        db = Database(self.database_url)
        try:
            with db.session() as session:
                rows = session.scalars(select(SpaceSecret).where(SpaceSecret.space_pk == ref))
                return {row.key: self.box.decrypt(row.value_encrypted) for row in rows}
        finally:
            db.engine.dispose()
