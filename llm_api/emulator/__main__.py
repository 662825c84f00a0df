"""Run the emulator: ``python -m llm_api.emulator --host 127.0.0.1 --port 8900``."""

from __future__ import annotations

import argparse
import importlib.util

import uvicorn

from llm_api.emulator.app import create_emulator_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llm_api.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    has_httptools = importlib.util.find_spec("httptools") is not None
    uvicorn.run(
        create_emulator_app(),
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop" if has_uvloop else "asyncio",
        http="httptools" if has_httptools else "h11",
        log_level=args.log_level,
        access_log=False,  # never log requests (their content stays in memory only)
        backlog=args.backlog,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,  # hanging/streaming requests must not block SIGTERM
        lifespan="on",
        server_header=False,
        date_header=True,
    )


if __name__ == "__main__":
    main()
