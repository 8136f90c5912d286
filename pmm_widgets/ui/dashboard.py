"""Building the operator app (`apps/control.ipynb`) and the research notebook's engine.

Why a module and not notebook code: the notebooks stay three short cells (stripped in git), and
the same wiring is tested without a browser.

The DB path: the default `sqlite:///pmm.db` is relative, and a Voilà/Jupyter kernel runs in the
notebook's folder (`apps/`), so a relative SQLite path is resolved against the repository root
(the folder holding `pyproject.toml`, searched upwards from the cwd). The operator app, the
research notebook and `python -m pmm_widgets.engine` run from the root then share one DB, and
therefore one lease.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ..config import Settings, Venue, load_settings
from ..domain import Mode
from ..engine.core import Engine
from .controls import ControlPanel


def project_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file():
            return d
    return here


def resolve_db_url(db_url: str, root: Path) -> str:
    """A relative SQLite file path becomes absolute under `root`; any other URL is unchanged."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return db_url
    if Path(url.database).is_absolute():
        return db_url
    return url.set(database=str(root / url.database)).render_as_string(hide_password=False)


def app_settings(**overrides: Any) -> Settings:
    """`load_settings()` with the SQLite path resolved against the repository root."""
    root = project_root()
    env_file = root / ".env"
    if env_file.is_file() and not Path(".env").is_file():
        overrides.setdefault("_env_file", str(env_file))
    settings = load_settings(**overrides)
    return settings.model_copy(update={"db_url": resolve_db_url(settings.db_url, root)})


def demo_mode(settings: Settings) -> bool:
    """PMM_DEMO=1, or the embedded sandbox: start quoting (paper) as soon as the page loads."""
    return os.environ.get("PMM_DEMO", "") == "1" or settings.venue is Venue.SANDBOX


def launch(settings: Settings | None = None) -> ControlPanel:
    """Build engine + panel; in demo mode start the engine now (it attaches if one owns the DB)."""
    settings = settings or app_settings()
    demo = demo_mode(settings)
    engine = Engine(settings, Mode.PAPER, auto_takeover=demo)
    panel = ControlPanel(engine)
    if demo:
        panel.start_engine()
    return panel
