"""The one exception type raised by everything in :mod:`datasets`."""


class DatasetError(Exception):
    """A dataset could not be found, read or validated.

    The message names the dataset or file and says what was wrong and what to do instead.
    """
