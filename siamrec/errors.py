"""One exception family: the CLI turns any SiamrecError into one line on stderr and a non-zero exit."""

from __future__ import annotations


class SiamrecError(Exception):
    """Base of every error a user can cause and fix; the message says what to do."""


class AudioError(SiamrecError):
    """A file could not be turned into usable audio."""


class NotAudioError(AudioError):
    """The file is not audio that any decoder here can read (text, truncated, corrupt)."""


class EmptyAudioError(AudioError):
    """The file decodes to no samples at all."""


class TooShortAudioError(AudioError):
    """The audio is shorter than the minimum a track needs."""


class SilentAudioError(AudioError):
    """The audio is digital silence: there is nothing to hear, so nothing to recommend."""


class ModelError(SiamrecError):
    """No model, an unreadable model, or one whose contract differs from siamrec's or the store's."""


class StoreError(SiamrecError):
    """The vector store is unreachable, locked by another process, or holds other data than asked for."""


class NotFoundError(SiamrecError):
    """A playlist or track the user named does not exist in the store."""


class ConnectorError(SiamrecError):
    """A playlist or audio source failed: bad credentials, network failure, malformed dump."""


class ConfigError(SiamrecError):
    """Bad command-line or environment configuration."""
