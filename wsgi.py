"""WSGI entry point for any server: ``gunicorn wsgi:app`` (configuration from $NC_CONNECT_CONFIG or ./config)."""

import logging

from broker.app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

app = create_app(sweeper=True)  # and the periodic sweep of expired sessions
