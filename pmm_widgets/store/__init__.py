"""Persistence: the table contract (`schema`), the write protocol (`sink`), the batched writer
thread (`writer`), engine construction (`db`), Alembic migrations (`migrate`) and read helpers
(`repo`).

Kept import-free on purpose: `from pmm_widgets.store.sink import MemorySink` in a pure unit test
must not pull in SQLAlchemy engines or Alembic.
"""
