"""Settings, read once from an environment mapping, failing loudly on bad values.

``Settings.from_env(os.environ)`` in programs; ``Settings.from_env({...})`` in tests.
Every setting is named ``MADOGUCHI_*``; an invalid value stops start-up with a message
that names the setting.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The repository root: the packages are installed editable, so this is the checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} must be between {low} and {high}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be true or false")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}={raw!r} must be a whole number from {low} to {high}")
    return int(raw)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return int(raw)


HANDOFF_WINDOW_S = 600.0


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an IP address (such as 127.0.0.1)") from None


def _secret(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name) or ""
    if raw and (len(raw) < 24 or not raw.isascii() or not raw.isprintable() or " " in raw):
        raise ConfigError(f"{name} must be at least 24 printable ASCII characters, no spaces")
    return raw


def _directory(env: Mapping[str, str], name: str, needs: tuple[str, ...]) -> Path | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    path = Path(raw).resolve()
    missing = [file for file in needs if not (path / file).is_file()]
    if missing:
        raise ConfigError(f"{name}={raw!r} must be a directory holding {', '.join(missing)}")
    return path


# The files of Swagger UI's distribution (the npm package swagger-ui-dist) the docs need.
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")


def _word_vectors(env: Mapping[str, str], encoder_path: Path) -> Path | None:
    """MADOGUCHI_WORD_VECTORS, or ``word-vectors`` beside the encoder (where
    `madoguchi encoder build` puts it); "none" ranks without them."""
    configured = env.get("MADOGUCHI_WORD_VECTORS")
    if configured and configured.lower() == "none":
        return None
    if configured:
        path = Path(configured).resolve()
        if not (path / "modules.json").is_file():
            raise ConfigError(
                f"MADOGUCHI_WORD_VECTORS={configured}: no sentence-transformers model there "
                "(modules.json missing); run `madoguchi encoder build` or set it to none"
            )
        return path
    beside = encoder_path.parent / "word-vectors"
    return beside if (beside / "modules.json").is_file() else None


@dataclass(frozen=True)
class Settings:
    home: Path
    encoder_path: Path
    city_path: Path = PROJECT_ROOT / "knowledge" / "city.yaml"
    # Questions to hand off (assistant.retrieval.out_of_scope); the file may be absent.
    out_of_scope_path: Path = PROJECT_ROOT / "knowledge" / "out_of_scope.yaml"
    api_port: int = 8000
    rasa_port: int = 5005
    action_port: int = 5055
    # Chiefly the sentence encoder (multilingual-e5-small, assistant.retrieval.e5) is at
    # ``encoder_path``; chiVe word vectors (assistant.retrieval.encoder), a second dense signal, at
    # ``word_vectors_path`` (None: ranked without them). Both are built by
    # `madoguchi encoder build`.
    word_vectors_path: Path | None = None
    # Decision thresholds (assistant.retrieval.ranking; assistant/retrieval/eval/README.md
    # says how they were set). The confidence is the estimated probability that the best
    # entry answers: at or above ``answer_threshold`` the engine answers. Otherwise it offers
    # the first three when the probability that one of them answers is at least
    # ``clarify_threshold`` and the best entry's cosine at least ``clarify_floor``. The
    # cosines are read with ranking.phrasing_bonus, so the same values suit entries with
    # one question and entries with many phrasings.
    answer_threshold: float = 0.95
    clarify_threshold: float = 0.3
    clarify_floor: float = 0.88
    # Hand off when 0.75 x the mean cosine of the two closest out-of-scope examples
    # (assistant.retrieval.out_of_scope) exceeds the nearest entry's by more than this margin
    # (assistant.retrieval.ranking.decide).
    out_of_scope_margin: float = -0.24
    # A slower Rasa reply is abandoned and the message answered from the engine.
    rasa_timeout_s: float = 5.0
    # After Rasa failed, the chat answers from the engine for this long before trying again.
    rasa_retry_s: float = 15.0
    # How long the API waits at start for the engine before serving without it (a
    # rebuild of a large index goes on in the background; /api/health shows progress).
    startup_wait_s: float = 30.0
    # From this many vectors on, FAISS searches an inverted-file (IVF) index, probing
    # ``nprobe`` of its lists, instead of comparing the query with every vector.
    approximate_from: int = 100_000
    nprobe: int = 32
    # Nobody approves their own revision (knowledge.workflow.Policy).
    separate_approver: bool = True
    # Anonymous resident chat: messages per minute from one client address, and from one
    # conversation. Over them the chat answers 429 with Retry-After.
    chat_rate_per_client: int = 60
    chat_rate_per_session: int = 20
    # Handoffs (new tickets) from one client address per ``HANDOFF_WINDOW_S``: beyond
    # it the resident is asked to wait or phone, and no ticket is opened.
    handoff_rate_per_client: int = 5
    # Resident data (resolved tickets with their transcripts, staff messages, feedback,
    # Rasa's conversations, failed logins) older than this is deleted (madoguchi purge).
    retention_days: int = 90
    # Session cookies are always Secure when the request came over HTTPS (directly or, with
    # uvicorn's --forwarded-allow-ips, through a proxy); set this to require it always.
    secure_cookies: bool = False
    # A staff or editor session ends after this long without a request (besides the
    # absolute limit of knowledge.accounts.SESSION_HOURS).
    session_idle_s: int = 30 * 60
    # Where Rasa and the action server listen. Loopback unless the services are spread
    # over several machines; they accept only callers holding the internal token
    # (assistant.operations.keys), but nothing outside this machine needs to reach them.
    bind_internal: str = "127.0.0.1"
    # How long a resident's conversation id is accepted after it was issued (a week:
    # a handoff on Friday evening is answered on Monday, or after 年末年始).
    conversation_ttl_s: int = 7 * 24 * 3600
    # /metrics: with a token, only to ``Authorization: Bearer <token>``; without one, only
    # to callers on this machine (the monitoring agent, or a proxy that does not forward
    # /metrics).
    metrics_token: str = ""
    # /docs (Swagger UI) is served only from a local copy of swagger-ui-dist: no page of
    # this origin loads a script from elsewhere. Unset: no /docs (/openapi.json stays).
    docs_assets: Path | None = None
    # The API server (uvicorn): seconds an idle keep-alive connection is kept, and the
    # connections served at once (more get 503 at once, rather than queueing unseen).
    api_keep_alive_s: int = 5
    api_concurrency: int = 400

    @property
    def database_path(self) -> Path:
        return self.home / "madoguchi.db"

    @property
    def secret_path(self) -> Path:
        """A random key made on first use; it signs the chat's session ids."""
        return self.home / "secret.key"

    @property
    def trackers_path(self) -> Path:
        """Rasa's tracker store (SQLite): every conversation's events."""
        return self.rasa_dir / "trackers.db"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def rasa_dir(self) -> Path:
        return self.home / "rasa"

    @property
    def rasa_model_path(self) -> Path:
        return self.rasa_dir / "models" / "madoguchi.tar.gz"

    @property
    def internal_host(self) -> str:
        """The address this machine reaches Rasa and the actions on."""
        address = ipaddress.ip_address(self.bind_internal)
        if address.is_unspecified:  # bound to every interface: loopback is one of them
            return "127.0.0.1" if address.version == 4 else "[::1]"
        return f"[{address}]" if address.version == 6 else str(address)

    @property
    def rasa_url(self) -> str:
        return f"http://{self.internal_host}:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://{self.internal_host}:{self.action_port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        home = Path(env.get("MADOGUCHI_HOME") or PROJECT_ROOT / "var").resolve()
        encoder = env.get("MADOGUCHI_ENCODER")
        encoder_path = Path(encoder).resolve() if encoder else home / "encoder"
        return cls(
            home=home,
            encoder_path=encoder_path,
            word_vectors_path=_word_vectors(env, encoder_path),
            city_path=Path(env.get("MADOGUCHI_CITY") or cls.city_path).resolve(),
            out_of_scope_path=Path(
                env.get("MADOGUCHI_OUT_OF_SCOPE") or cls.out_of_scope_path
            ).resolve(),
            separate_approver=_flag(env, "MADOGUCHI_SEPARATE_APPROVER", True),
            chat_rate_per_client=_int(
                env, "MADOGUCHI_CHAT_RATE_PER_CLIENT", cls.chat_rate_per_client, 1, 10**6
            ),
            chat_rate_per_session=_int(
                env, "MADOGUCHI_CHAT_RATE_PER_SESSION", cls.chat_rate_per_session, 1, 10**6
            ),
            handoff_rate_per_client=_int(
                env, "MADOGUCHI_HANDOFF_RATE_PER_CLIENT", cls.handoff_rate_per_client, 1, 10**6
            ),
            retention_days=_int(env, "MADOGUCHI_RETENTION_DAYS", cls.retention_days, 1, 36500),
            secure_cookies=_flag(env, "MADOGUCHI_SECURE_COOKIES", False),
            session_idle_s=60
            * _int(env, "MADOGUCHI_SESSION_IDLE_MINUTES", cls.session_idle_s // 60, 1, 24 * 60),
            bind_internal=_address(env, "MADOGUCHI_BIND_INTERNAL", cls.bind_internal),
            conversation_ttl_s=3600
            * _int(
                env, "MADOGUCHI_CONVERSATION_HOURS", cls.conversation_ttl_s // 3600, 1, 24 * 366
            ),
            metrics_token=_secret(env, "MADOGUCHI_METRICS_TOKEN"),
            docs_assets=_directory(env, "MADOGUCHI_DOCS_ASSETS", SWAGGER_FILES),
            api_keep_alive_s=_int(env, "MADOGUCHI_API_KEEP_ALIVE", cls.api_keep_alive_s, 1, 600),
            api_concurrency=_int(
                env, "MADOGUCHI_API_CONCURRENCY", cls.api_concurrency, 10, 100_000
            ),
            api_port=_port(env, "MADOGUCHI_API_PORT", cls.api_port),
            rasa_port=_port(env, "MADOGUCHI_RASA_PORT", cls.rasa_port),
            action_port=_port(env, "MADOGUCHI_ACTION_PORT", cls.action_port),
            answer_threshold=_float(
                env, "MADOGUCHI_ANSWER_THRESHOLD", cls.answer_threshold, 0.0, 1.0
            ),
            clarify_threshold=_float(
                env, "MADOGUCHI_CLARIFY_THRESHOLD", cls.clarify_threshold, 0.0, 1.0
            ),
            clarify_floor=_float(env, "MADOGUCHI_CLARIFY_FLOOR", cls.clarify_floor, -1.0, 1.0),
            out_of_scope_margin=_float(
                env, "MADOGUCHI_OUT_OF_SCOPE_MARGIN", cls.out_of_scope_margin, -1.0, 1.0
            ),
            rasa_timeout_s=_float(env, "MADOGUCHI_RASA_TIMEOUT", cls.rasa_timeout_s, 0.1, 600.0),
            rasa_retry_s=_float(env, "MADOGUCHI_RASA_RETRY", cls.rasa_retry_s, 0.0, 3600.0),
            startup_wait_s=_float(env, "MADOGUCHI_STARTUP_WAIT", cls.startup_wait_s, 0.0, 3600.0),
            approximate_from=_int(
                env, "MADOGUCHI_APPROXIMATE_FROM", cls.approximate_from, 1, 10**9
            ),
            nprobe=_int(env, "MADOGUCHI_NPROBE", cls.nprobe, 1, 4096),
        )
