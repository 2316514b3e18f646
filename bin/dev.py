"""`make run` / `make demo`: start web, worker and beat (and Redis when REDIS_URL is unset,
and the HTX sandbox for the demo) under honcho. Ctrl-C stops them all."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bitsgap_clone.embedded_redis import free_port  # noqa: E402


def main() -> None:
    demo = "--demo" in sys.argv[1:]
    env = os.environ
    env.setdefault("DEBUG", "1")
    # honcho gives every process its own PORT, so the web port travels as WEB_PORT.
    env["WEB_PORT"] = env.get("PORT", "8000")
    processes = ["web", "worker", "beat"]
    if not env.get("REDIS_URL"):
        port = free_port()
        env["EMBEDDED_REDIS_PORT"] = str(port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        processes.append("redis")
    if demo:
        port = free_port()
        env["SANDBOX_PORT"] = str(port)
        env["HTX_API_URL"] = f"http://127.0.0.1:{port}"
        processes.append("sandbox")
    print(
        f"Dashboard: http://127.0.0.1:{env['WEB_PORT']}/   HTX API: {env.get('HTX_API_URL', 'https://api.huobi.pro')}"
        f"   Redis: {env['REDIS_URL']}",
        flush=True,
    )
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    os.chdir(ROOT)
    os.execv(os.path.join(bin_dir, "honcho"), ["honcho", "-f", "Procfile", "start", *processes])


if __name__ == "__main__":
    main()
