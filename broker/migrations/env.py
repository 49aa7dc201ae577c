"""Alembic environment: the engine comes from the broker (``broker.db.upgrade``)."""

from alembic import context

from broker.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
