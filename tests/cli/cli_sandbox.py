"""`pmm ARGV` in its own process, production settings pointed at an in-process loopback sandbox
(the live start's refusals: tests/cli/test_cli_refused_*.py)."""

from __future__ import annotations

import asyncio
import os
import sys

from pmm_widgets.sandbox.server import Sandbox


async def pmm_on(sb: Sandbox, tmp_path, key: str, *argv: str, env_extra: dict[str, str] | None = None,  # noqa: ANN001
                 ) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `pmm ARGV` with the private key `key` and no PMM_* of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_GAMMA_URL": sb.gamma_url, "PMM_CLOB_URL": sb.clob_url, "PMM_CLOB_WS_URL": sb.ws_url,
                "PMM_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PMM_PRIVATE_KEY": key, "PMM_RECORD": "off",
                "PMM_UNIVERSE_SIZE": "4", **(env_extra or {})})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pmm_widgets.cli", *argv, env=env,
                                                cwd=str(tmp_path), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
