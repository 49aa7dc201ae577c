"""session index: the téléservices of each session and its absolute end (back-channel logout at expiry)

Revision ID: 0006
Revises: 0005
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows indexed before this migration keep NULLs: the sweep then takes the absolute end from
    # created_at and the téléservices from the grants of the session's sid.
    with op.batch_alter_table('account_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clients', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_account_sessions_sid'), ['sid'], unique=False)
    # Rows older than the longest absolute lifetime (12 h) are sessions long over that nobody pruned:
    # dropped here, or the first sweep would send their téléservices a burst of stale logout tokens.
    cutoff = datetime.now(timezone.utc) - timedelta(hours=12)
    sessions = sa.table('account_sessions', sa.column('created_at', sa.DateTime(timezone=True)))
    op.execute(sessions.delete().where(sessions.c.created_at < cutoff))


def downgrade() -> None:
    with op.batch_alter_table('account_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_sessions_sid'))
        batch_op.drop_column('expires_at')
        batch_op.drop_column('clients')
