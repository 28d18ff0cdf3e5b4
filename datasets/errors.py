"""The one exception type raised by everything in :mod:`datasets`."""


class DatasetError(Exception):
    """A dataset could not be found, read or validated.

    The message names the dataset or file and says what was wrong and what to do instead.
    """


class DataNotFound(DatasetError):
    """A dataset's files are not where it looked (the download cache, or the ``root=`` given).

    A :class:`DatasetError`, so every caller that handles those handles it; command lines tell it
    apart to print one line on how to get the data (``python -m datasets.download NAME``).
    """
