"""Typed errors raised by the library; the CLI turns each into one red line and a non-zero exit."""


class DnervError(Exception):
    """Base class of every error a user can cause (bad input, bad archive, bad settings)."""


class InputError(DnervError):
    """An input path or video cannot be used."""


class ConfigError(DnervError):
    """A setting is out of range or inconsistent."""


class OutputError(DnervError):
    """An output cannot be written (exists without --force, unwritable directory, ...)."""


class ArchiveError(DnervError):
    """A file is not a readable dnerv archive (bad magic, truncated, checksum mismatch)."""


class UnsupportedVersionError(ArchiveError):
    """The archive was written in a format version this build cannot read."""


class ResumeError(DnervError):
    """A checkpoint does not match the inputs or settings it would resume."""


class ClipIndexError(DnervError, IndexError):
    """A clip index or video name does not exist in the archive."""


class Interrupted(DnervError):
    """The user stopped a fit (Ctrl-C); a checkpoint was written and --resume continues it."""
