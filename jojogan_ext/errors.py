"""The one exception family of the project: each error carries a sentence a user can act on.

The fronts (UI, API, CLI) turn these into a message, a 4xx answer or an exit code.
"""


class JojoganError(ValueError):
    """Base class: something the user gave or asked for cannot be done; the message says why."""


class CheckpointError(JojoganError):
    """A model checkpoint is unreadable, foreign, truncated or does not fit."""


class PackError(JojoganError):
    """A style pack is invalid, does not fit the base model, or its name is unsafe."""


class MissingPackError(PackError):
    """There is no style pack of that name (any more: another request may have just deleted it); the API's 404."""


class PackExistsError(PackError):
    """A style pack of that name already exists and replacing it was not asked for (409 where the API says so)."""


class ImageError(JojoganError):
    """An input image cannot be used (not an image, truncated, too large)."""


class MissingWeightsError(JojoganError):
    """Model weights are not on disk and cannot be downloaded now."""


class BusyError(JojoganError):
    """Another long job (training) already runs."""


class CancelledError(JojoganError):
    """The user cancelled a long job."""
