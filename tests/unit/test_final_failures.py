"""Which failures orchestrators must not retry: one rule, ``is_final``."""

from __future__ import annotations

import pytest

from etl_meta.components import ComponentFailed, ComponentInputError, SandboxError
from etl_meta.components.failures import describe_failure, is_final
from etl_meta.errors import StoreUnavailableError, ValidationError
from etl_meta.secrets import SecretDecryptError, SecretKeyMissingError


@pytest.mark.parametrize(
    "error",
    [
        ValidationError.single("path", "must be relative"),
        SandboxError("path", "hidden files and directories are off limits"),
        SecretDecryptError("no configured key decrypts it", field="password"),
        SecretKeyMissingError.single("secret_keys", "no key configured"),
        FileNotFoundError(2, "No such file or directory", "data/in.csv"),
        ComponentFailed("2 checks failed", checks=[{"rule": "not_null"}]),
        ComponentInputError("expected one input"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_failures_that_repeat_on_every_attempt_are_final(error):
    assert is_final(error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("server closed the connection"),
        TimeoutError("timed out"),
        StoreUnavailableError("the store did not answer within 5 s"),
        ComponentFailed("the warehouse refused the write"),
        OSError("disk full"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_failures_another_attempt_may_fix_are_retried(error):
    assert not is_final(error)


def test_a_final_failure_is_described_with_its_type_unless_it_is_etl_metas_own():
    missing = FileNotFoundError(2, "No such file or directory", "data/in.csv")
    assert describe_failure(missing) == (
        "FileNotFoundError: [Errno 2] No such file or directory: 'data/in.csv'"
    )
    invalid = ValidationError.single("path", "must be relative")
    assert describe_failure(invalid) == str(invalid)
