"""WSGI entry point for any server: ``gunicorn wsgi:app`` (configuration from $NC_CONNECT_CONFIG or ./config)."""

from broker.app import create_app

app = create_app()
