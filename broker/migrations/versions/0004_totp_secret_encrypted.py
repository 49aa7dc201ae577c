"""TOTP secrets encrypted at rest: room for the ciphertext

The downgrade refuses while any TOTP secret is encrypted ("v1:…", about 83 characters): the
previous version can neither hold it (64 characters) nor read it.  It does not decrypt them (that
would need the data key here); restore the database backup taken before the upgrade instead.
Without encrypted values (no citizen enrolled since the upgrade, none sealed) it narrows the column.

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
    sealed = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM local_credentials WHERE totp_secret LIKE 'v1:%'")).scalar_one()
    if sealed:
        raise RuntimeError(
            f"cannot downgrade below 0004: {sealed} TOTP secret(s) are encrypted with the data key, which the "
            "previous version can neither store (64 characters) nor read. Run the previous version only after "
            "restoring the database backup taken before the upgrade (second factors enrolled since are lost), "
            "or after those citizens turned their second factor off.")
    with op.batch_alter_table('local_credentials') as batch:
        batch.alter_column('totp_secret', existing_type=sa.String(length=255), type_=sa.String(length=64))
