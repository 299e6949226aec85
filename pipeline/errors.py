"""User-facing errors, raised by every stage: the CLI prints their message and exits with code 2, no traceback."""


class CamlocError(Exception):
    """A problem the user can fix (bad params, missing or corrupt input). The message says how."""


class ParamsError(CamlocError):
    """A bad value in params.yaml; the message names the key, the value and the valid choices."""

    def __init__(self, key: str, value, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"params.yaml: {key} = {value!r} is invalid: {expected}")
