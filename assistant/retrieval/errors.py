"""The engine's named errors, importable without torch or faiss (for the CLI's edge)."""


class EncoderError(RuntimeError):
    """The encoder directory is missing or unusable; the message says which and why."""


class IndexUnavailable(RuntimeError):
    """The index file is missing, corrupt or from another format; the message says which."""
