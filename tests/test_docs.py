"""The documentation lists every command, route and action; every intent has examples."""

from __future__ import annotations

import re

import yaml
from fastapi.routing import iter_route_contexts

from api.main import create_app
from assistant.operations.cli import build_parser
from assistant.operations.config import PROJECT_ROOT

REFERENCE = (PROJECT_ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
TRAINING = PROJECT_ROOT / "training_data"


def cli_commands() -> list[str]:
    commands = []
    top = build_parser()._subparsers._group_actions[0]
    for name, parser in top.choices.items():
        nested = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if nested:
            commands += [f"madoguchi {name} {sub}" for sub in nested[0].choices]
        else:
            commands.append(f"madoguchi {name}")
    return commands


def documented(section: str) -> list[str]:
    """The first cell of each row of the reference's table under ``## section``."""
    text = REFERENCE.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `")]


def test_every_cli_command_is_documented():
    commands = cli_commands()
    assert "madoguchi kb import" in commands
    # A row's command: its words up to the first argument (PATH, --format, [--user ...]).
    rows = {re.match(r"\| `(madoguchi(?: [a-z]+)*)", row)[1] for row in documented("Command line")}
    assert rows == set(commands)


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, those of included routers too."""
    return {
        (method, context.path)
        for context in iter_route_contexts(create_app().routes)
        for method in getattr(context, "methods", None) or ()
        if method != "HEAD"
    }


def test_every_api_route_is_documented():
    routes = app_routes()
    assert ("POST", "/api/chat") in routes
    rows = {
        (method, path)
        for row in documented("HTTP API")
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)", row)
    }
    # /docs is served only when MADOGUCHI_DOCS_ASSETS is set (documented in its row).
    assert rows - {("GET", "/docs")} == routes


def test_readme_starts_with_run_then_test():
    block = README.split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in block] == ["make run", "make test"]


def test_every_domain_action_has_a_class():
    import inspect

    from rasa_sdk import Action

    import assistant.conversation.actions.answer
    import assistant.conversation.actions.feedback
    import assistant.conversation.actions.handoff
    import assistant.conversation.actions.smalltalk  # noqa: F401

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    names = {
        cls().name()
        for cls in subclasses(Action)
        if cls.__module__.startswith("assistant") and not inspect.isabstract(cls)
    }
    domain = yaml.safe_load((TRAINING / "domain.yml").read_text(encoding="utf-8"))
    assert set(domain["actions"]) == names


def test_every_intent_has_forty_examples_and_inquiry_three_hundred_across_topics():
    domain = yaml.safe_load((TRAINING / "domain.yml").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    inquiry_files = set()
    for path in (TRAINING / "nlu").rglob("*.yml"):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            examples = [line for line in block["examples"].splitlines() if line.strip()]
            counts[block["intent"]] = counts.get(block["intent"], 0) + len(examples)
            if block["intent"] == "inquiry":
                inquiry_files.add(path.relative_to(TRAINING / "nlu").parent.as_posix())
    assert set(counts) == set(domain["intents"])
    for intent in domain["intents"]:
        assert counts[intent] >= 40, intent
    assert counts["inquiry"] >= 300
    assert inquiry_files == {"inquiry"}, "inquiry examples live in nlu/inquiry/, one file per topic"
