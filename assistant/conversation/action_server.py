"""The action server: rasa_sdk's, listening on the internal address and answering only
the Rasa server.

rasa_sdk alone listens on every interface (``SANIC_HOST`` or 0.0.0.0), asks nobody who
calls, and reads a ``text/plain`` body as JSON, so any host on the network, or any web
page open in a browser on the office LAN (a simple cross-site POST needs no preflight),
could run ``action_handoff`` and write tickets. Here:

- it listens on ``MADOGUCHI_BIND_INTERNAL`` (127.0.0.1 by default);
- every request but ``GET /health`` must carry the internal token (``assistant.operations.keys``)
  in ``X-Madoguchi-Token``, which Rasa sends from its endpoints file (401 otherwise);
- a POST must be ``application/json`` (415 otherwise): a browser cannot send that
  cross-site without a preflight, which this server never grants.

Run as ``python -m assistant.conversation.action_server --actions
assistant.conversation.actions --port N`` (the launcher does); it takes rasa_sdk's
arguments.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app_for_serve, create_argument_parser
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.worker.loader import AppLoader

from assistant.operations.config import Settings
from assistant.operations.keys import internal_refusal, internal_token, load_secret

log = logging.getLogger(__name__)


def guard(app: Sanic, token: str) -> Sanic:
    """Refuse every request but the health check that lacks the token or is not JSON."""

    @app.on_request
    async def check(request: Request):
        if request.path == "/health" and request.method in ("GET", "HEAD"):
            return None
        refused = internal_refusal(request.headers, request.method, token)
        return response.json({"error": refused[1]}, refused[0]) if refused else None

    return app


def create_guarded_app(action_executor: ActionExecutor, token: str, **options) -> Sanic:
    """rasa_sdk's app with :func:`guard`; module-level, so Sanic's workers can load it."""
    return guard(create_app_for_serve(action_executor, **options), token)


def main(argv: list[str] | None = None) -> None:
    args = create_argument_parser().parse_args(argv)
    settings = Settings.from_env(os.environ)
    utils.configure_colored_logging(args.loglevel)
    utils.update_sanic_log_level()
    executor = ActionExecutor()
    executor.register_package(args.actions_module or args.actions)
    token = internal_token(load_secret(settings.secret_path))
    loader = AppLoader(
        factory=partial(
            create_guarded_app,
            executor,
            token,
            cors_origins=args.cors,  # none unless asked for: only Rasa calls us
            auto_reload=args.auto_reload,
            endpoints=args.endpoints,
        )
    )
    app = loader.load()
    log.info("action server listening on %s:%d", settings.bind_internal, args.port)
    app.prepare(
        host=settings.bind_internal, port=args.port, workers=utils.number_of_sanic_workers()
    )
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main(sys.argv[1:])
