"""The exceptions embark raises: every one an embark.Error, carrying embark's
message (the file, line, field or parameter, and the reason), and also the
built-in exception a Python caller would catch for that kind of failure."""


class Error(Exception):
    """A failure reported by embark's engine."""


class InvalidArgument(Error, ValueError):
    """A parameter, argument or array that embark cannot use."""


class NotFound(Error, FileNotFoundError):
    """A file or checkpoint that is not there."""


class IOFailure(Error, OSError):
    """Reading or writing failed."""


class DataError(Error):
    """Input that does not parse, or a checkpoint that does not verify."""
