"""Shared fixtures."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    # Test problems are small: one BLAS thread is as fast, and on a busy shared machine
    # multi-threaded OpenBLAS spin-waits (measured up to 30x slower).
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
