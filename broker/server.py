"""The production WSGI server (gunicorn, gthread workers)."""

from __future__ import annotations

from typing import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, factory: Callable[[], Flask], options: dict) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.factory()


def run_gunicorn(factory: Callable[[], Flask], host: str, port: int, workers: int, threads: int) -> None:
    # Each worker builds its own app (its own database pool and Redis connections).
    _Gunicorn(factory, {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-",
        # never log query strings: they carry codes and state (checklist A-28)
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
        "timeout": 30,
        "graceful_timeout": 20,
    }).run()
