"""``rasa run`` with one fix for speed: the action server's reply is validated against
a schema compiled once, instead of once per reply.

Rasa 3.6 validates every custom action's response with ``jsonschema.validate``, which
first checks the (large) events schema itself and builds a new validator each time;
profiled under load, that was about 30 % of the Rasa server's CPU. Here the same schema
validates the same responses with a validator built once, so what is accepted and
refused (and the error message) is unchanged.

Run in the Rasa environment: ``.venv-rasa/bin/python -m assistant.conversation.rasa_server run ...``
takes exactly the arguments of ``rasa`` (the launcher uses it for ``make run``).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _validator():
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # once, as jsonschema.validate would on every call
    return cls(schema)


def _validate_action_result(self, result: dict[str, Any]) -> bool:
    from jsonschema import exceptions
    from rasa.shared.constants import DOCS_BASE_URL

    error = exceptions.best_match(_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        "For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def main() -> None:
    from rasa.__main__ import main as rasa_main
    from rasa.core.actions.action import RemoteAction

    RemoteAction._validate_action_result = _validate_action_result
    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
