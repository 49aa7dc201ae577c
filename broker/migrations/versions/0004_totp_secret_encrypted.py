"""TOTP secrets encrypted at rest: room for the ciphertext

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('local_credentials') as batch:
        batch.alter_column('totp_secret', existing_type=sa.String(length=64), type_=sa.String(length=255))


def downgrade() -> None:
    with op.batch_alter_table('local_credentials') as batch:
        batch.alter_column('totp_secret', existing_type=sa.String(length=255), type_=sa.String(length=64))
