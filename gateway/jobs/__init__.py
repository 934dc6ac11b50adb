"""Durable asynchronous prediction jobs: one store interface, SQLite and Redis back ends, a runner."""
