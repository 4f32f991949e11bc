"""Examples of questions the assistant hands off instead of answering from an entry.

Business of other offices (passports, driving licences, pension records), topics no entry
covers, private companies' matters, chit-chat. Such a question often shares words with an
entry (「会社の印鑑証明」 with 印鑑証明, 「パスポートの申請」 with the ID-documents entry),
so its cosine with that entry alone does not show it is out of scope; its cosine with the
closest example here does. A file of the city's, like its profile: replace or extend it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from assistant.operations.config import ConfigError

MAX_EXAMPLES = 5000
MAX_CHARS = 500


class OutOfScopeFileError(ConfigError):
    """The examples file is malformed; the message says where."""


def load_examples(path: Path) -> list[str]:
    """The examples in ``path`` (YAML: ``examples: [text, ...]``), or [] if it is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise OutOfScopeFileError(f"{path}: not readable as UTF-8 YAML ({error})") from None
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        raise OutOfScopeFileError(f"{path}: expected a mapping with a list under 'examples'")
    if len(examples) > MAX_EXAMPLES:
        raise OutOfScopeFileError(f"{path}: {len(examples)} examples; at most {MAX_EXAMPLES}")
    for number, text in enumerate(examples, 1):
        if not isinstance(text, str) or not text.strip():
            raise OutOfScopeFileError(f"{path}: example {number} is not a non-empty text")
        if len(text) > MAX_CHARS or "\n" in text:
            raise OutOfScopeFileError(
                f"{path}: example {number} must be one line of at most {MAX_CHARS} characters"
            )
    return examples
